"""S3 storage of run artifacts (seed 001): large data never travels in state.

Each step writes ``storage/{tenant_id}/{run_id}/{step}/output.json`` (and files
under ``artifacts/``) and passes on only ``{output_path, output_digest,
summary, metrics}``.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from funnel.platform import aws
from funnel.settings import get_settings


def s3():
    return aws.client("s3")


def step_prefix(tenant_id: str, run_id: str, step: str, item_key: str = "") -> str:
    folder = f"{step}-{item_key}" if item_key else step
    return f"storage/{tenant_id}/{run_id}/{folder}"


def put_bytes(key: str, body: bytes, content_type: str) -> str:
    s3().put_object(Bucket=get_settings().artifacts_bucket, Key=key, Body=body, ContentType=content_type,
                    ServerSideEncryption="AES256")
    return hashlib.sha256(body).hexdigest()


def get_bytes(key: str) -> bytes:
    return s3().get_object(Bucket=get_settings().artifacts_bucket, Key=key)["Body"].read()


def get_json(key: str, expected_digest: str | None = None) -> Any:
    body = get_bytes(key)
    if expected_digest and hashlib.sha256(body).hexdigest() != expected_digest:
        raise ValueError(f"artifact {key} does not match its digest")
    return json.loads(body)


def presigned_url(key: str, expires_in: int = 900) -> str:
    return s3().generate_presigned_url("get_object", Params={"Bucket": get_settings().artifacts_bucket, "Key": key},
                                       ExpiresIn=expires_in)
