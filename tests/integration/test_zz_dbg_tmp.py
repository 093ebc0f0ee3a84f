import time
from tests.integration.test_sync_autoresume import *
from kdm import log

def test_dbg(endpoints, kafka, upstream_db, downstream_db, unique):
    log.setup("info")
    source = f"ar-{unique}"
    key = subtask_key(f"ar-{source}", source)
    meta = next_gtid(gtid_now(endpoints))
    with subtask(endpoints, kafka, source, upstream_db, downstream_db, meta, FAST) as runner:
        time.sleep(8)
        print("STAGE", runner.stage, [e.render() for e in runner.errors], runner._resume_at, time.monotonic())
        for r in history(kafka, key):
            print("H", r["stage"], codes(r))
