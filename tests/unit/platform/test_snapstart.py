"""The API function's init is safe to snapshot (SnapStart): importing the handler and running the
before-snapshot hook loads every area's routes but opens no connection, creates no boto3 client or
session, reads no secret, fills no cache and starts no thread. Whatever is unique to an environment
(connections, credentials, secrets, random tokens) is made on first use, after the restore."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

PROBE = textwrap.dedent("""
    import importlib.util, json, socket, sys, threading, types

    connects = []
    real_connect = socket.socket.connect
    def recording_connect(self, address):
        connects.append(repr(address))
        raise OSError("no network while initialising")
    socket.socket.connect = recording_connect

    hooks = []  # what Lambda's snapshot_restore_py would run before taking the snapshot
    sys.modules["snapshot_restore_py"] = types.SimpleNamespace(
        register_before_snapshot=lambda func, *a, **k: hooks.append((func, a, k)) or func,
        register_after_restore=lambda func, *a, **k: func)

    spec = importlib.util.spec_from_file_location("handler_module", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for func, args, kwargs in reversed(hooks):
        func(*args, **kwargs)

    from funnel import db
    from funnel.platform import aws, llm, secrets, tenants
    boto3 = sys.modules.get("boto3")
    print(json.dumps({
        "hooks": len(hooks),
        "areas": sorted(module.app.state.areas.routers),
        "connects": connects,
        "pools": len(db._pools),
        "clients": sorted(aws._clients),
        "boto3_session": bool(boto3 and boto3.DEFAULT_SESSION),
        "secrets": len(secrets._cache),
        "directory": len(tenants.directory._cache),
        "llm_registry": llm._registry_cache is not None,
        "threads": sorted(t.name for t in threading.enumerate() if t is not threading.main_thread()),
    }))
""")


def test_init_and_before_snapshot_hook_hold_nothing_unique():
    result = subprocess.run([sys.executable, "-c", PROBE, str(ROOT / "functions" / "api" / "app.py")],
                            capture_output=True, text=True, cwd=ROOT, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1",
                                 "AWS_REGION": "us-east-1", "FUNNEL_ENVIRONMENT": "prod"})
    assert result.returncode == 0, result.stderr
    state = json.loads(result.stdout.strip().splitlines()[-1])
    from funnel.api.app import AREA_ROUTERS

    assert state.pop("hooks") == 1 and state.pop("areas") == sorted(AREA_ROUTERS)
    assert state == {"connects": [], "pools": 0, "clients": [], "boto3_session": False, "secrets": 0,
                     "directory": 0, "llm_registry": False, "threads": []}
