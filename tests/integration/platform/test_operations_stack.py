"""``funnel ... --stack NAME`` against moto: the command asks CloudFormation (the runtime's moto server) for the
stack's PlatformOperationsFunction, invokes it with boto3 (moto dispatches the invocation to the same handler
in this process, funnel_dev.lambdas), and prints the function's report, as it would against AWS."""
from __future__ import annotations

import json
import uuid

import pytest

from funnel import cli
from funnel.platform import tenants
from tests.support.cli import printed_json, printed_lines
from tests.support.tenants import PASSWORD, new_tenant

pytestmark = pytest.mark.usefixtures("runtime")


def _stack_template(function_name: str) -> str:
    """A stack holding a function named like the deployed one (moto creates it; its code is never run here)."""
    return json.dumps({"Resources": {
        "PlatformOperationsRole": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                    "Action": "sts:AssumeRole"}]}}},
        "PlatformOperationsFunction": {"Type": "AWS::Lambda::Function", "Properties": {
            "FunctionName": function_name, "Runtime": "python3.12", "Handler": "app.handler",
            "Role": {"Fn::GetAtt": ["PlatformOperationsRole", "Arn"]},
            "Code": {"ZipFile": "def handler(event, context):\n    raise RuntimeError('moto runs the local one')\n"}}},
    }})


@pytest.fixture(scope="module")
def stacks(runtime):
    """Two stacks: one whose function is the runtime's PlatformOperationsFunction, one whose function no
    handler serves (an invocation that fails in Lambda)."""
    cloudformation = runtime.client("cloudformation")
    names = {"deployed": f"funnel-ops-{uuid.uuid4().hex[:8]}", "broken": f"funnel-broken-{uuid.uuid4().hex[:8]}"}
    cloudformation.create_stack(StackName=names["deployed"],
                                TemplateBody=_stack_template(runtime.template.function_name("PlatformOperationsFunction")))
    cloudformation.create_stack(StackName=names["broken"], TemplateBody=_stack_template(f"{names['broken']}-ops"))
    yield names
    for name in names.values():
        cloudformation.delete_stack(StackName=name)


def test_tenants_list_and_servers_list_run_in_the_stacks_function(stacks, capsys):
    handle = new_tenant()
    assert cli.main(["tenants", "list", "--stack", stacks["deployed"]]) == 0
    rows = {line.split()[0]: line.split() for line in printed_lines(capsys.readouterr().out)}
    assert rows[handle.slug][1:4] == ["silo", "active", "free"] and rows[handle.slug][-1] == "primary"
    assert cli.main(["servers", "list", "--stack", stacks["deployed"]]) == 0
    assert printed_lines(capsys.readouterr().out)[0].split()[0:2] == ["primary", "open"]


def test_a_tenant_is_provisioned_and_migrated_through_the_stack(stacks, capsys):
    slug = f"stack-{uuid.uuid4().hex[:8]}"
    assert cli.main(["tenants", "create", "Through the stack", "--slug", slug, "--owner-email",
                     f"owner@{slug}.example.com", "--owner-password", PASSWORD, "--stack", stacks["deployed"]]) == 0
    created = printed_json(capsys.readouterr().out)
    assert (created["slug"], created["status"], created["server"]) == (slug, "active", "primary")
    assert tenants.directory.by_slug(slug).status == "active"
    assert cli.main(["tenants", "migrate", slug, "--stack", stacks["deployed"]]) == 0
    assert "at_head" in capsys.readouterr().out
    assert cli.main(["migrate", "--stack", stacks["deployed"], "--workers", "2"]) == 0
    assert printed_lines(capsys.readouterr().out)[-1].startswith("control: ok; tenant databases:")
    assert cli.main(["tenants", "delete", slug, "--yes", "--stack", stacks["deployed"]]) == 0
    assert printed_json(capsys.readouterr().out)["status"] == "deleted"


def test_a_refused_operation_an_unknown_stack_and_a_failing_function_exit_1(stacks, capsys):
    assert cli.main(["tenants", "migrate", "no-such-tenant", "--stack", stacks["deployed"]]) == 1
    assert "NotFound" in capsys.readouterr().err
    assert cli.main(["tenants", "list", "--stack", "funnel-nowhere"]) == 1
    assert "funnel-nowhere" in capsys.readouterr().err
    assert cli.main(["tenants", "list", "--stack", stacks["broken"]]) == 1
    assert f"{stacks['broken']}-ops" in capsys.readouterr().err
