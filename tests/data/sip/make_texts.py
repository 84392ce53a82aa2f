"""Writes tests/data/sip/*.txt as bytes (CRLF, GB2312 bodies) in the shapes Hikvision, Dahua and sipp
send (header order, User-Agent, compact forms, Route on REGISTER, folded Authorization, y= answers,
as described in /work/shared/notes/gb28181.md). They are written from those descriptions, not
captured from devices. The digests use password 12345678 and a nonce issued by
DigestAuthenticator("3402000000", secret=b"pms-trio-test-secret") at t=1_700_000_000.

    python tests/data/sip/make_texts.py
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "python"))
from pms_trio.sip.digest import DigestAuthenticator, digest_response

OUT = Path(__file__).resolve().parent
SERVER = "34020000002000000001"
REALM = "3402000000"
PASSWORD = "12345678"
auth = DigestAuthenticator(REALM, secret=b"pms-trio-test-secret")
NONCE = auth.challenge(1_700_000_000.0).nonce
print("nonce", NONCE)

def msg(head: str, body: bytes = b"", *, cl=True, compact_cl=False) -> bytes:
    lines = head.strip("\n").split("\n")
    if cl:
        lines.append(("l: " if compact_cl else "Content-Length: ") + str(len(body)))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body

def xml(text: str, enc="GB2312") -> bytes:
    codec = "gb2312" if enc == "GB2312" else "utf-8"
    return text.strip("\n").replace("\n", "\r\n").encode(codec) + b"\r\n"

HIK = "34020000001320000001"  # Hikvision IPC
NVR = "34020000001180000001"  # Hikvision NVR (type 118)
DAH = "34020000001320000002"  # Dahua IPC

# 1. Hikvision IPC first REGISTER (no credentials)
(OUT / "hikvision_register.txt").write_bytes(msg(f"""
REGISTER sip:{SERVER}@{REALM} SIP/2.0
Via: SIP/2.0/UDP 192.168.1.64:5060;rport;branch=z9hG4bK1417813474
From: <sip:{HIK}@{REALM}>;tag=1248362374
To: <sip:{HIK}@{REALM}>
Call-ID: 1566853738
CSeq: 1 REGISTER
Contact: <sip:{HIK}@192.168.1.64:5060>
Max-Forwards: 70
User-Agent: IP Camera
Expires: 3600
"""))

resp = digest_response(method="REGISTER", uri=f"sip:{SERVER}@{REALM}", username=HIK, realm=REALM,
                       password=PASSWORD, nonce=NONCE)
(OUT / "hikvision_register_auth.txt").write_bytes(msg(f"""
REGISTER sip:{SERVER}@{REALM} SIP/2.0
Via: SIP/2.0/UDP 192.168.1.64:5060;rport;branch=z9hG4bK1938286640
From: <sip:{HIK}@{REALM}>;tag=1248362374
To: <sip:{HIK}@{REALM}>
Call-ID: 1566853738
CSeq: 2 REGISTER
Contact: <sip:{HIK}@192.168.1.64:5060>
Authorization: Digest username="{HIK}", realm="{REALM}", nonce="{NONCE}", uri="sip:{SERVER}@{REALM}", response="{resp}", algorithm=MD5
Max-Forwards: 70
User-Agent: IP Camera
Expires: 3600
"""))

resp0 = digest_response(method="REGISTER", uri=f"sip:{SERVER}@{REALM}", username=HIK, realm=REALM,
                        password=PASSWORD, nonce=NONCE)
(OUT / "hikvision_unregister.txt").write_bytes(msg(f"""
REGISTER sip:{SERVER}@{REALM} SIP/2.0
Via: SIP/2.0/UDP 192.168.1.64:5060;rport;branch=z9hG4bK2083771220
From: <sip:{HIK}@{REALM}>;tag=1867305128
To: <sip:{HIK}@{REALM}>
Call-ID: 1089742651
CSeq: 3 REGISTER
Contact: <sip:{HIK}@192.168.1.64:5060>
Authorization: Digest username="{HIK}", realm="{REALM}", nonce="{NONCE}", uri="sip:{SERVER}@{REALM}", response="{resp0}", algorithm=MD5
Max-Forwards: 70
User-Agent: IP Camera
Expires: 0
"""))

# 2. Dahua: compact headers, qop=auth, Route (NVRs add it), a second Via comma-separated, a folded line
uri = f"sip:{SERVER}@192.168.1.10:5060"
respq = digest_response(method="REGISTER", uri=uri, username=DAH, realm=REALM, password=PASSWORD,
                        nonce=NONCE, qop="auth", nc="00000001", cnonce="0a4f113b")
(OUT / "dahua_register_auth_qop.txt").write_bytes(msg(f"""
REGISTER sip:{SERVER}@192.168.1.10:5060 SIP/2.0
v: SIP/2.0/UDP 10.0.0.108:5060;rport;branch=z9hG4bK672102315, SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKproxy1
Route: <sip:{SERVER}@192.168.1.10:5060;lr>
f: <sip:{DAH}@{REALM}>;tag=1783916127
t: <sip:{DAH}@{REALM}>
i: 1421553342@10.0.0.108
CSeq: 2 REGISTER
m: <sip:{DAH}@10.0.0.108:5060>
Authorization: Digest username="{DAH}", realm="{REALM}",
 nonce="{NONCE}", uri="{uri}",
\tresponse="{respq}", algorithm=MD5, cnonce="0a4f113b", qop=auth, nc=00000001
Max-Forwards: 70
User-Agent: DH-IPC
Expires: 3600
""", compact_cl=True))

# 3. sipp: uri= the remote host, not the Request-URI
sipp_uri = "sip:192.168.1.10:5060"
resps = digest_response(method="REGISTER", uri=sipp_uri, username=HIK, realm=REALM, password=PASSWORD,
                        nonce=NONCE)
(OUT / "sipp_register_auth.txt").write_bytes(msg(f"""
REGISTER sip:{SERVER}@{REALM} SIP/2.0
Via: SIP/2.0/UDP 127.0.1.1:5061;branch=z9hG4bK-4242-2-0
From: sipp <sip:{HIK}@{REALM}>;tag=4242SIPpTag002
To: sipp <sip:{HIK}@{REALM}>
Call-ID: 2-4242@127.0.1.1
CSeq: 2 REGISTER
Contact: sip:{HIK}@127.0.1.1:5061
Authorization: Digest username="{HIK}",realm="{REALM}",uri="{sipp_uri}",nonce="{NONCE}",response="{resps}",algorithm=MD5
Max-Forwards: 70
Subject: Performance Test
Expires: 3600
"""))

# 4. Keepalives
body = xml(f"""
<?xml version="1.0" encoding="GB2312"?>
<Notify>
<CmdType>Keepalive</CmdType>
<SN>9</SN>
<DeviceID>{HIK}</DeviceID>
<Status>OK</Status>
<Info>
</Info>
</Notify>
""")
(OUT / "hikvision_keepalive.txt").write_bytes(msg(f"""
MESSAGE sip:{SERVER}@{REALM} SIP/2.0
Via: SIP/2.0/UDP 192.168.1.64:5060;rport;branch=z9hG4bK1131404540
From: <sip:{HIK}@{REALM}>;tag=1911961577
To: <sip:{SERVER}@{REALM}>
Call-ID: 1703373779
CSeq: 20 MESSAGE
Content-Type: Application/MANSCDP+xml
Max-Forwards: 70
User-Agent: IP Camera
""", body))

body = xml(f"""
<?xml version="1.0" encoding="GB2312" standalone="yes" ?>
<Notify>
  <CmdType>Keepalive</CmdType>
  <SN>43</SN>
  <DeviceID>{DAH}</DeviceID>
  <Status>OK</Status>
</Notify>
""")
(OUT / "dahua_keepalive_compact.txt").write_bytes(msg(f"""
MESSAGE sip:{SERVER}@{REALM} SIP/2.0
v: SIP/2.0/UDP 10.0.0.108:5060;rport;branch=z9hG4bK988462718
f: <sip:{DAH}@{REALM}>;tag=1337092153
t: <sip:{SERVER}@{REALM}>
i: 1883734190@10.0.0.108
CSeq: 20 MESSAGE
c: Application/MANSCDP+xml
Max-Forwards: 70
User-Agent: DH-IPC
""", body, compact_cl=True))

# 5. NVR catalog in three MESSAGEs (SumNum 5: 2 + 2 + 1), GB2312 names, bare & in an Address
NAMES = ["大门口", "停车场东", "仓库走廊", "一楼大厅", "楼顶云台"]
def item(i, name, addr="杭州市滨江区", ptz=3):
    return f"""<Item>
<DeviceID>3402000000131000000{i}</DeviceID>
<Name>{name}</Name>
<Manufacturer>Hikvision</Manufacturer>
<Model>IP Camera</Model>
<Owner>Owner</Owner>
<CivilCode>3402000000</CivilCode>
<Address>{addr}</Address>
<Parental>0</Parental>
<ParentID>{NVR}</ParentID>
<SafetyWay>0</SafetyWay>
<RegisterWay>1</RegisterWay>
<Secrecy>0</Secrecy>
<IPAddress>192.168.1.{100 + i}</IPAddress>
<Port>8000</Port>
<Status>ON</Status>
<Info>
<PTZType>{ptz}</PTZType>
</Info>
</Item>"""
parts = [[1, 2], [3, 4], [5]]
for n, ids in enumerate(parts, 1):
    items = "\n".join(item(i, NAMES[i - 1], "滨江 A&B 栋" if i == 3 else "杭州市滨江区", 1 if i == 5 else 3) for i in ids)
    body = xml(f"""
<?xml version="1.0" encoding="GB2312"?>
<Response>
<CmdType>Catalog</CmdType>
<SN>17</SN>
<DeviceID>{NVR}</DeviceID>
<SumNum>5</SumNum>
<DeviceList Num="{len(ids)}">
{items}
</DeviceList>
</Response>
""")
    (OUT / f"hikvision_nvr_catalog_{n}of3.txt").write_bytes(msg(f"""
MESSAGE sip:{SERVER}@{REALM} SIP/2.0
Via: SIP/2.0/UDP 192.168.1.20:5060;rport;branch=z9hG4bK{2044300000 + n}
From: <sip:{NVR}@{REALM}>;tag={88000000 + n}
To: <sip:{SERVER}@{REALM}>
Call-ID: {77000000 + n}
CSeq: {20 + n} MESSAGE
Content-Type: Application/MANSCDP+xml
Max-Forwards: 70
User-Agent: Hikvision
""", body))

# 6. Dahua catalog, UTF-8 declared, lower-case-ish quirks: blanks, an empty item
body = xml(f"""
<?xml version="1.0" encoding="UTF-8"?>
<Response>
<CmdType>Catalog</CmdType>
<SN>3</SN>
<DeviceID>{DAH}</DeviceID>
<SumNum>1</SumNum>
<DeviceList Num="2">
<Item>
<DeviceID>{DAH[:10]}1310000009</DeviceID>
<Name>通道一 南门</Name>
<Manufacturer>Dahua</Manufacturer>
<Model>DH-IPC-HFW1230M</Model>
<Owner>0</Owner>
<CivilCode>{REALM}</CivilCode>
<Address>Axis</Address>
<Parental>0</Parental>
<ParentID>{DAH}</ParentID>
<RegisterWay>1</RegisterWay>
<Secrecy>0</Secrecy>
<Status>ON</Status>
</Item>
<Item>
</Item>
</DeviceList>
</Response>
""", enc="UTF-8")
(OUT / "dahua_catalog_utf8.txt").write_bytes(msg(f"""
MESSAGE sip:{SERVER}@{REALM} SIP/2.0
Via: SIP/2.0/UDP 10.0.0.108:5060;rport;branch=z9hG4bK1210343990
From: <sip:{DAH}@{REALM}>;tag=1594836522
To: <sip:{SERVER}@{REALM}>
Call-ID: 1015963212@10.0.0.108
CSeq: 21 MESSAGE
Content-Type: Application/MANSCDP+xml
Max-Forwards: 70
User-Agent: DH-IPC
""", body))

# 7. DeviceInfo response
body = xml(f"""
<?xml version="1.0" encoding="GB2312"?>
<Response>
<CmdType>DeviceInfo</CmdType>
<SN>18</SN>
<DeviceID>{NVR}</DeviceID>
<DeviceName>仓库录像机</DeviceName>
<Result>OK</Result>
<DeviceType>NVR</DeviceType>
<Manufacturer>Hikvision</Manufacturer>
<Model>DS-7808N-K1</Model>
<Firmware>V4.30.000</Firmware>
<Channel>5</Channel>
</Response>
""")
(OUT / "hikvision_nvr_deviceinfo.txt").write_bytes(msg(f"""
MESSAGE sip:{SERVER}@{REALM} SIP/2.0
Via: SIP/2.0/UDP 192.168.1.20:5060;rport;branch=z9hG4bK1880451702
From: <sip:{NVR}@{REALM}>;tag=771937302
To: <sip:{SERVER}@{REALM}>
Call-ID: 1306405893
CSeq: 24 MESSAGE
Content-Type: Application/MANSCDP+xml
Max-Forwards: 70
User-Agent: Hikvision
""", body))

# 8. Camera 200 OK to our INVITE (SRS utest shape: TCP, setup:active, filesize, y=)
CH = "34020000001320000001"
sdp = (b"v=0\r\no=34020000001320000001 1244 1244 IN IP4 192.168.1.64\r\ns=Play\r\nc=IN IP4 192.168.1.64\r\n"
       b"t=0 0\r\nm=video 15060 TCP/RTP/AVP 96\r\na=setup:active\r\na=sendonly\r\na=rtpmap:96 PS/90000\r\n"
       b"a=filesize:0\r\ny=0200007585\r\n")
(OUT / "camera_invite_200.txt").write_bytes(msg(f"""
SIP/2.0 200 OK
Via: SIP/2.0/UDP 192.168.1.10:5060;rport=5060;received=192.168.1.10;branch=z9hG4bKinvite0001
From: <sip:{SERVER}@{REALM}>;tag=pms0001
To: <sip:{CH}@192.168.1.64:5060>;tag=1395712263
Call-ID: 0a1b2c3d4e5f@192.168.1.10
CSeq: 1 INVITE
Contact: <sip:{CH}@192.168.1.64:5060>
Content-Type: application/sdp
User-Agent: IP Camera
""", sdp))
print("ok")
