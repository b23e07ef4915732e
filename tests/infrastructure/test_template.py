"""template.yaml as deployed: it transforms, lints, and keeps the rules docs/template.md states.

State machine and handler checks also run on the local runtime's fixture
template, so they are exercised even before the product's first state machine.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from funnel_dev.template import FUNCTION, QUEUE, STATE_MACHINE, SamTemplate, definition_placeholders, load_yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
FIXTURE_TEMPLATE = ROOT / "tests" / "e2e" / "fixtures" / "runtime-template.yaml"
EVENTS = ROOT / "events"
# Managed policies SAM may attach (X-Ray, VPC ENIs, logs): the loader answers from here instead of IAM.
MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "AWSLambdaVPCAccessExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
    "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    "AWSLambdaSQSQueueExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole",
}
# Settings that have safe defaults and are tuned per deployment only when needed (not wired in Globals).
SETTINGS_WITH_DEFAULTS = {
    "region", "db_pool_max_size", "tenant_directory_ttl_seconds", "access_token_ttl_seconds",
    "refresh_token_ttl_seconds", "secret_cache_ttl_seconds", "max_body_bytes", "max_bulk_body_bytes",
    "login_max_attempts_per_account",
    "login_max_attempts_per_ip", "login_window_seconds", "llm_step_overrides",
    "stripe_api_base",  # unset in production: the SDK talks to Stripe itself
    # the webhook's signature tolerance, the past_due grace period and the first trial: the product's choice
    # (shared/funnel/billing/README.md)
    "stripe_webhook_tolerance_seconds", "billing_past_due_grace_days", "billing_trial_days",
    "notification_retry_base_seconds", "sns_trusted_url_pattern", "soft_bounce_threshold", "cfn_response_url_pattern",
    "contact_import_sync_rows", "email_max_per_second", "email_max_per_day", "email_throttle_delay_seconds",
    "smtp_ca_file",
    "oidc_redirect_uris", "oidc_ca_file",  # the frontend's callback; a private issuer's CA (tests)
    "allow_offline_llm",  # only the local runtime and tests set it; a deployed stage never allows it
    # sign-up's placement, limits and link lifetime: the defaults are the product's choice (platform README)
    "signup_isolation", "signup_max_per_ip", "signup_window_seconds", "verify_email_ttl_seconds",
    "verify_email_resend_max", "verify_email_resend_window_seconds",
    # password reset's limits and answer floor: the defaults are the product's choice (platform README)
    "password_reset_max_per_ip", "password_reset_max_per_address", "password_reset_window_seconds",
    "password_reset_answer_seconds",
    "workspace_deletion_grace_days",  # the grace period before a workspace's deletion: the product's choice
    # the export's link lifetime, retention and stale-run time: the product's choice (docs/export.md)
    "export_link_seconds", "export_retention_days", "export_stale_seconds",
}


@pytest.fixture(scope="module")
def document() -> dict:
    return load_yaml(TEMPLATE)


def templates():
    return [pytest.param(TEMPLATE, id="template.yaml"), pytest.param(FIXTURE_TEMPLATE, id="e2e-fixture-template")]


def state_machines():
    return [pytest.param(path, lid, id=f"{path.name}:{lid}")
            for path in (TEMPLATE, FIXTURE_TEMPLATE) for lid in SamTemplate(path).of_type(STATE_MACHINE)]


def functions():
    return [pytest.param(path, spec.logical_id, id=f"{path.name}:{spec.logical_id}")
            for path in (TEMPLATE, FIXTURE_TEMPLATE) for spec in SamTemplate(path).functions()]


class _StaticPolicyLoader:
    def load(self) -> dict[str, str]:
        return MANAGED_POLICIES


def _packaged(document: dict) -> dict:
    """What `sam package` hands to the transform: local code paths become S3 URIs."""
    packaged = json.loads(json.dumps(document))
    for resource in packaged["Resources"].values():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            if isinstance(props.get(key), str):
                props[key] = f"s3://funnel-artifacts/{props[key].strip('/')}.zip"
    return packaged


@pytest.fixture(scope="module")
def transformed(document, monkeypatch_module) -> dict:
    from samtranslator.translator.transform import transform

    monkeypatch_module.setenv("AWS_DEFAULT_REGION", "us-east-1")  # the translator asks boto for a region
    return transform(_packaged(document), {}, _StaticPolicyLoader())


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patcher:
        yield patcher


def test_sam_translator_transforms_the_template(transformed):
    types = {r["Type"] for r in transformed["Resources"].values()}
    assert not any(t.startswith("AWS::Serverless::") for t in types)
    assert {"AWS::Lambda::Function", "AWS::ApiGatewayV2::Api", "AWS::RDS::DBProxy", "AWS::IAM::Role"} <= types


def test_cfn_lint_passes():
    result = subprocess.run([str(Path(sys.executable).with_name("cfn-lint")), str(TEMPLATE)], capture_output=True,
                            text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_globals_carry_every_setting_the_product_reads(document):
    from funnel.settings import Settings

    variables = document["Globals"]["Function"]["Environment"]["Variables"]
    expected = {f"FUNNEL_{name.upper()}" for name in Settings.model_fields} - {
        f"FUNNEL_{name.upper()}" for name in SETTINGS_WITH_DEFAULTS}
    assert sorted(expected - set(variables)) == []
    assert sorted(v for v in variables if v.startswith("FUNNEL_") and v not in
                  {f"FUNNEL_{n.upper()}" for n in Settings.model_fields}) == []
    for resource in document["Resources"].values():  # one environment for all: see docs/template.md
        if resource["Type"] == FUNCTION:
            own = resource["Properties"].get("Environment", {}).get("Variables", {})
            assert not set(own) & set(variables)


def test_database_urls_go_through_rds_proxy_with_tls(document):
    variables = document["Globals"]["Function"]["Environment"]["Variables"]
    for name in ("FUNNEL_CONTROL_DATABASE_URL", "FUNNEL_ADMIN_DATABASE_URL"):
        assert "${DatabaseProxy.Endpoint}" in variables[name]["Fn::Sub"]
        assert "sslmode=require" in variables[name]["Fn::Sub"]
    assert document["Resources"]["DatabaseProxy"]["Properties"]["RequireTLS"] is True
    assert int(document["Parameters"]["DbEngineVersion"]["Default"].split(".")[0]) >= 15


def test_key_secrets_are_generated_with_a_kid(document):
    for lid in ("JwtSigningKey", "DataEncryptionKey", "TrackingSigningKey"):
        generated = document["Resources"][lid]["Properties"]["GenerateSecretString"]
        assert json.loads(generated["SecretStringTemplate"]) == {"kid": "k1"}
        assert generated["GenerateStringKey"] == "secret"
        assert generated["PasswordLength"] >= 44 and generated.get("ExcludePunctuation")  # base64 of >= 32 bytes
    assert json.loads(document["Resources"]["LlmApiKeys"]["Properties"]["SecretString"]) == {}


def test_artifacts_bucket_is_encrypted_and_private(document):
    props = document["Resources"]["ArtifactsBucket"]["Properties"]
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert all(props["PublicAccessBlockConfiguration"].values())


def test_every_queue_has_a_dead_letter_queue_with_an_alarm(document):
    resources = document["Resources"]
    queues = {lid for lid, r in resources.items() if r["Type"] == QUEUE}
    dead_letter_queues = {r["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
                          for lid, r in resources.items() if r["Type"] == QUEUE and "RedrivePolicy" in r["Properties"]}
    # where SNS puts what it could not deliver, and where Lambda puts a failed asynchronous (scheduled) invocation
    dead_letter_queues |= {r["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
                           for r in resources.values() if r["Type"] == "AWS::SNS::Subscription"}
    dead_letter_queues |= {r["Properties"]["DeadLetterQueue"]["TargetArn"]["Fn::GetAtt"][0] for r in resources.values()
                           if r["Type"] == FUNCTION and "DeadLetterQueue" in r["Properties"]}
    alarmed = {d["Value"]["Fn::GetAtt"][0] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"
               for d in r["Properties"].get("Dimensions", []) if d["Name"] == "QueueName"}
    assert queues - dead_letter_queues, "no work queue at all"
    for queue in queues - dead_letter_queues:
        assert "RedrivePolicy" in resources[queue]["Properties"], f"{queue} has no DLQ"
    assert dead_letter_queues <= alarmed, f"DLQs without an alarm: {sorted(dead_letter_queues - alarmed)}"


# Product areas (shared/funnel/<area>/): every function, state machine and queue names the one it belongs to.
AREAS = {"platform", "content", "outreach", "email", "notifications", "community"}


def _snake(camel: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", camel).lower()


def _named(stem: str) -> dict:
    """The ``!Sub funnel-${Environment}-<kebab stem>`` a resource named after ``stem`` (CamelCase) carries."""
    return {"Fn::Sub": "funnel-${Environment}-" + _snake(stem).replace("_", "-")}


def test_names_carry_the_area(document):
    """docs/template.md "Names": folder functions/<area>_<part>/, logical id <Area><Part>Function, FunctionName
    funnel-${Environment}-<area>-<part> (ApiFunction serves every area); statemachines/<area>_<name>.asl.json
    for <Area><Name>; queues <Area><Name>Queue / <Area><Name>DeadLetterQueue named the same way."""
    for lid, resource in document["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == FUNCTION:
            assert lid.endswith("Function"), lid
            stem = lid.removesuffix("Function")
            folder = f"functions/{_snake(stem)}/"
            if props.get("PackageType") == "Image":
                assert resource["Metadata"]["Dockerfile"] == folder + "Dockerfile", lid
                assert props["ImageConfig"]["Command"] == [f"functions.{_snake(stem)}.app.handler"], lid
            else:
                assert props["CodeUri"] == folder, lid
            assert props["FunctionName"] == _named(stem), lid
            assert stem == "Api" or _snake(stem).split("_")[0] in AREAS, f"{lid}: no product area in its name"
        elif resource["Type"] == STATE_MACHINE:
            assert props["DefinitionUri"] == f"statemachines/{_snake(lid)}.asl.json", lid
            assert props["Name"] == _named(lid), lid
            assert _snake(lid).split("_")[0] in AREAS, f"{lid}: no product area in its name"
        elif resource["Type"] == QUEUE:
            stem = lid.removesuffix("DeadLetterQueue") if lid.endswith("DeadLetterQueue") else lid.removesuffix("Queue")
            suffix = "-dlq" if lid.endswith("DeadLetterQueue") else ""
            assert props["QueueName"] == {"Fn::Sub": _named(stem)["Fn::Sub"] + suffix}, lid
            assert _snake(stem).split("_")[0] in AREAS, f"{lid}: no product area in its name"


@pytest.mark.parametrize("path", templates())
def test_every_sqs_event_reports_batch_item_failures(path):
    for source in SamTemplate(path).sqs_event_sources():
        assert source.report_batch_item_failures, f"{source.function_id}.{source.event_name}"


def _statements(role: dict) -> list[dict]:
    return [s for policy in role["Properties"].get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]


def test_function_roles_grant_only_scoped_resources(transformed):
    resources = transformed["Resources"]
    roles = {r["Properties"]["Role"]["Fn::GetAtt"][0] for r in resources.values()
             if r["Type"] == "AWS::Lambda::Function" and isinstance(r["Properties"].get("Role"), dict)}
    assert roles
    for role_id in roles:
        role = resources[role_id]
        assert set(role["Properties"].get("ManagedPolicyArns", [])) <= set(MANAGED_POLICIES.values())
        for statement in _statements(role):
            targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            for target in targets:
                assert target != "*", f"{role_id}: {statement['Action']} on *"
                text = json.dumps(target)
                assert not re.search(r':\*"|:\*$', text), f"{role_id}: account-wide {statement['Action']}"


@pytest.mark.parametrize(("path", "logical_id"), state_machines())
def test_state_machine_placeholders_are_all_substituted(path, logical_id):
    template = SamTemplate(path)
    text, substitutions = template.state_machine_definition(logical_id)
    assert set(definition_placeholders(text)) <= set(substitutions)
    assert set(substitutions) <= set(definition_placeholders(text)), "unused DefinitionSubstitutions"


@pytest.mark.parametrize(("path", "logical_id"), state_machines())
def test_state_machine_passes_statelint(path, logical_id, tmp_path):
    definition = tmp_path / f"{logical_id}.asl.json"
    definition.write_text(SamTemplate(path).substituted_definition(logical_id))
    statelint = Path(sys.executable).with_name("statelint")
    result = subprocess.run([str(statelint), str(definition)], capture_output=True, text=True)
    problems = [line.strip() for line in result.stdout.splitlines()[1:] if line.strip()]
    assert result.returncode == 0 or (problems and not [p for p in problems if not STATELINT_GAP.fullmatch(p)]), \
        result.stdout + result.stderr


# statelint 3.1.0 (the newest) predates ReaderConfig.InputType, which a Distributed Map's ItemReader over a JSON or
# CSV object needs (AWS and moto's interpreter alike: without it the object is not read as a list of items).
STATELINT_GAP = re.compile(r'Field "InputType" not allowed in State Machine\.States\.\w+\.ItemReader\.ReaderConfig')


MOTO_CREATE = """
import sys, boto3
from moto import mock_aws
with mock_aws():
    boto3.client("stepfunctions", region_name="us-east-1").create_state_machine(
        name=sys.argv[1], definition=sys.stdin.read(), roleArn="arn:aws:iam::123456789012:role/test")
"""


@pytest.mark.parametrize(("path", "logical_id"), state_machines())
def test_moto_accepts_the_state_machine(path, logical_id):
    # In a fresh interpreter: mock_aws resets moto's process-wide backends, which a LocalRuntime started
    # in this process (the session ``runtime``) serves from.
    result = subprocess.run([sys.executable, "-c", MOTO_CREATE, logical_id], capture_output=True, text=True,
                            input=SamTemplate(path).substituted_definition(logical_id), timeout=120,
                            env={"PATH": os.environ.get("PATH", ""), "AWS_ACCESS_KEY_ID": "test",
                                 "AWS_SECRET_ACCESS_KEY": "test"})
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize(("path", "logical_id"), functions())
def test_function_handler_imports(path, logical_id):
    from funnel_dev.runtime import _import_handler

    spec = next(s for s in SamTemplate(path).functions() if s.logical_id == logical_id)
    assert callable(_import_handler(spec))


def _requirement_lines(path: Path) -> list[str]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_layer_requirements_match_pyproject():
    """Every pyproject dependency is in exactly one layers/*/requirements.txt, and nothing else is."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    layered = [line for path in sorted((ROOT / "layers").glob("*/requirements.txt"))
               for line in _requirement_lines(path)]
    assert sorted(layered) == sorted(project["dependencies"])
    browser = _requirement_lines(ROOT / "functions" / "outreach_browser_worker" / "requirements.txt")
    assert browser == ["-r ../../layers/deps/requirements.txt", *project["optional-dependencies"]["browser"]]


def test_layers_reference_only_what_exists(document):
    resources = document["Resources"]
    layers = {lid: r for lid, r in resources.items() if r["Type"] == "AWS::Serverless::LayerVersion"}
    makefile = (ROOT / "Makefile").read_text()
    for lid, layer in layers.items():
        content = ROOT / layer["Properties"]["ContentUri"]
        method = layer["Metadata"]["BuildMethod"]
        assert content.is_dir(), lid
        assert layer["Metadata"].get("BuildArchitecture") == "arm64"
        assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
        if method == "makefile":
            assert content.resolve() == ROOT and f"\nbuild-{lid}:" in makefile, lid
        else:
            assert method == "python3.12" and (content / "requirements.txt").is_file(), lid
            assert sorted(p.name for p in content.iterdir()) == ["requirements.txt"], \
                f"{lid} ships only its dependencies"
    used = set()
    for lid, resource in resources.items():
        if resource["Type"] != FUNCTION or resource["Properties"].get("PackageType") == "Image":
            continue
        refs = [ref["Ref"] for ref in resource["Properties"]["Layers"]]
        assert set(refs) <= set(layers) and len(refs) <= 5, lid
        assert refs[0] == "DepsLayer" and refs[-1] == "SharedLayer", lid
        used |= set(refs)
    assert used == set(layers), "a layer no function uses"


def test_shared_layer_build_is_the_product_package_only():
    """build-SharedLayer installs the package without dependencies; it maps migrations/ in and not devtools/."""
    rule = (ROOT / "Makefile").read_text().split("\nbuild-SharedLayer:", 1)[1].split("\n\n", 1)[0]
    assert "--no-deps" in rule and '--target "$(ARTIFACTS_DIR)/python" .' in rule and "devtools" not in rule
    setup = (ROOT / "setup.py").read_text()
    assert '"funnel.migrations": "migrations"' in setup and "funnel_dev" not in setup


def test_samconfig_has_the_three_environments():
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    for environment in ("dev", "staging", "prod"):
        overrides = config[environment]["deploy"]["parameters"]["parameter_overrides"]
        assert f"Environment={environment}" in overrides
        assert config[environment]["deploy"]["parameters"]["stack_name"] == f"funnel-{environment}"


def event_samples():
    return [pytest.param(path, id=str(path.relative_to(EVENTS))) for path in sorted(EVENTS.glob("*/*.json"))
            if not path.name.endswith(".expect.json")]


def test_event_samples_are_named_after_a_function():
    names = {spec.logical_id for spec in SamTemplate(TEMPLATE).functions()}
    strays = [str(p.relative_to(EVENTS)) for p in EVENTS.glob("**/*.json") if p.parent.name not in names]
    assert strays == [], "events/<FunctionLogicalId>/<name>.json (docs/template.md)"


def test_every_sample_has_its_expected_outcome_and_every_function_a_success_sample():
    from tests.support.event_samples import expectation_path

    samples = [param.values[0] for param in event_samples()]
    assert [str(p.relative_to(EVENTS)) for p in samples if not expectation_path(p).is_file()] == []
    orphans = [str(p.relative_to(EVENTS)) for p in EVENTS.glob("*/*.expect.json")
               if not p.with_name(p.name.removesuffix(".expect.json") + ".json").is_file()]
    assert orphans == []
    names = {spec.logical_id for spec in SamTemplate(TEMPLATE).functions()}
    with_success = {p.parent.name for p in samples if not re.search(r"rejected|deleted|gone|no-longer", p.stem)}
    assert sorted(names - with_success) == []


def test_every_afterwards_check_names_a_sample():
    from tests.support.event_samples import AFTERWARDS, sample_key

    assert sorted(set(AFTERWARDS) - {sample_key(param.values[0]) for param in event_samples()}) == []


@pytest.fixture(scope="module")
def sample_values(runtime):
    from contextlib import ExitStack

    from tests.support.event_samples import seed

    with ExitStack() as stack:  # the samples' contact site and waiting execution end with the module
        yield seed(runtime, stack)


@pytest.mark.parametrize("sample", event_samples())
def test_event_sample_gives_its_expected_outcome(sample, runtime, sample_values):
    from tests.support.event_samples import afterwards, check, expectation_path, load

    try:
        result = runtime.invoke(sample.parent.name, load(sample, sample_values))
    finally:  # this test's thread was the invocation's execution environment: release what it keeps warm
        shutdown = getattr(runtime.handler_module(sample.parent.name), "shutdown", None)
        if shutdown is not None:
            shutdown()
    problems = check(load(expectation_path(sample), sample_values), result)
    problems += afterwards(sample, runtime, sample_values)
    assert problems == [], f"{sample.relative_to(EVENTS)}: {problems}"


def test_api_function_runs_under_snapstart_behind_its_alias(document, transformed):
    props = document["Resources"]["ApiFunction"]["Properties"]
    assert props["SnapStart"] == {"ApplyOn": "PublishedVersions"} and props.get("AutoPublishAlias")
    assert float(props["Runtime"].removeprefix("python")) >= 3.12  # the first Python runtime with SnapStart
    # What SnapStart cannot be combined with.
    assert "ProvisionedConcurrencyConfig" not in props and "FileSystemConfigs" not in props
    assert props.get("EphemeralStorage", {}).get("Size", 512) <= 512
    resources = transformed["Resources"]
    alias = f"ApiFunctionAlias{props['AutoPublishAlias']}"
    assert resources[alias]["Type"] == "AWS::Lambda::Alias"
    assert resources["ApiFunction"]["Properties"]["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    # Every HTTP API route reaches the alias (the published, snapshotted version), never $LATEST.
    permissions = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::Permission"
                   and r["Properties"]["Principal"] == "apigateway.amazonaws.com"
                   and r["Properties"]["FunctionName"] in ({"Ref": "ApiFunction"}, {"Ref": alias})]
    assert permissions and all(p["FunctionName"] == {"Ref": alias} for p in permissions)
    body = next(r for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Api")["Properties"]["Body"]
    uris = [json.dumps(operation["x-amazon-apigateway-integration"]["uri"]) for path in body["paths"].values()
            for operation in path.values() if "ApiFunction" in json.dumps(operation)]
    assert uris and all(f"${{{alias}}}" in uri for uri in uris)


def test_no_deployed_stage_allows_the_offline_llm():
    assert "FUNNEL_ALLOW_OFFLINE_LLM" not in TEMPLATE.read_text()


def test_every_setting_is_read_by_the_product():
    from funnel.settings import Settings

    sources = "\n".join(path.read_text() for folder in ("shared", "functions", "devtools")
                        for path in (ROOT / folder).rglob("*.py") if path.name != "settings.py")
    assert [name for name in Settings.model_fields if not re.search(rf"\.{name}\b", sources)] == []
