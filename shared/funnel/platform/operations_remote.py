"""An operation run by a stack's PlatformOperationsFunction, inside the VPC where the databases are: from the
operator's laptop (``funnel ... --stack NAME``, which cannot reach them), and from the deployment's own functions
(``run_in_operations_function``: sign-up provisions a workspace, an export is started).

The function is found as CloudFormation names it (``describe_stack_resource`` of ``PlatformOperationsFunction``),
invoked synchronously, and its report returned; endpoints and credentials are boto3's usual ones (profile,
environment; ``AWS_ENDPOINT_URL`` points at moto in the tests).
"""
from __future__ import annotations

import json

from funnel.platform.operations import Report
from funnel.settings import get_settings

FUNCTION_LOGICAL_ID = "PlatformOperationsFunction"
# The function's timeout (900 s) and a little: a migration of every tenant answers late, not never.
READ_TIMEOUT_SECONDS = 960


class RemoteOperationFailed(RuntimeError):
    """The stack has no such function, or it failed without a report (its error, as Lambda gives it)."""


def _clients():
    import boto3  # lazy: only --stack needs it
    from botocore.config import Config

    session = boto3.session.Session()
    region = session.region_name or get_settings().region
    # No retries: an invocation that timed out on our side may still be running (a provisioning, a migration).
    config = Config(read_timeout=READ_TIMEOUT_SECONDS, connect_timeout=10, retries={"total_max_attempts": 1})
    return session.client("cloudformation", region_name=region), session.client("lambda", region_name=region,
                                                                                 config=config)


def function_name(stack: str, cloudformation=None) -> str:
    """The physical name of the stack's PlatformOperationsFunction."""
    from botocore.exceptions import ClientError

    cloudformation = cloudformation or _clients()[0]
    try:
        detail = cloudformation.describe_stack_resource(StackName=stack, LogicalResourceId=FUNCTION_LOGICAL_ID)
    except ClientError as exc:
        raise RemoteOperationFailed(f"stack {stack}: {exc.response['Error'].get('Message', exc)}") from exc
    return detail["StackResourceDetail"]["PhysicalResourceId"]


def invoke(stack: str, event: dict) -> Report:
    """Run ``event`` (an operation of funnel.platform.operations) in the stack's function; its report."""
    cloudformation, lambda_client = _clients()
    name = function_name(stack, cloudformation)
    response = lambda_client.invoke(FunctionName=name, InvocationType="RequestResponse",
                                    Payload=json.dumps(event).encode())
    return _report_of(name, response)


def run_in_operations_function(event: dict, wait: bool = True) -> Report | None:
    """Run ``event`` in this deployment's operations function (``operations_function_name``): with ``wait``, its
    report (a sign-up waits for its workspace); without, started asynchronously (an export reports through its
    run) and None."""
    from funnel.platform import aws

    name = get_settings().operations_function_name
    response = aws.client("lambda").invoke(FunctionName=name, InvocationType="RequestResponse" if wait else "Event",
                                           Payload=json.dumps(event).encode())
    if not wait:
        return None
    return _report_of(name, response)


def _report_of(name: str, response: dict) -> Report:
    """The report a synchronous invocation answered, or its failure as Lambda gives it."""
    payload = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError"):
        detail = payload if isinstance(payload, dict) else {}
        raise RemoteOperationFailed(
            f"{name}: {detail.get('errorType', 'error')}: {detail.get('errorMessage', payload)}")
    return Report.model_validate(payload)
