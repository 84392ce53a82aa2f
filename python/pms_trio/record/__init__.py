"""Recording: the command port, the recordings' supervision, finished files and retention (SPEC section 5).

The sans-IO parts (:mod:`.protocol`, :mod:`.done`, :mod:`.retention`) import nothing of ours; the
media itself never passes through Python (the media core's recorder writes the file).
"""
