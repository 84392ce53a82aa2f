//! Stand-in for `pms-trio run -c CFG --ready-file PATH` that serves the toy SFU, so that
//! `bench/fanout/run.py --server-cmd target/.../examples/toy_sfu` can be tried without the server.
//! Its figures say nothing about pms-trio.

#[path = "../toy/sfu.rs"]
mod toy;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ready = args
        .iter()
        .position(|a| a == "--ready-file")
        .and_then(|i| args.get(i + 1));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let _sfu = toy::spawn(
        listener,
        pms_bench_fanout::transport::Identity::generate().unwrap(),
    );
    let doc = serde_json::json!({"websocket": url, "http": null, "webrtc_ports": [], "pid": std::process::id()});
    if let Some(path) = ready {
        std::fs::write(path, doc.to_string()).expect("ready file");
    }
    eprintln!("toy_sfu ready {doc}");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
