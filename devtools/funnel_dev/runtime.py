"""The local runtime: the whole product in one process, from template.yaml.

``LocalRuntime`` starts a PostgreSQL cluster of its own, moto server for the
AWS services, and builds from the template what the cloud would: buckets,
queues with their redrive policies, secrets (generated like
GenerateSecretString), state machines (DefinitionUri + DefinitionSubstitutions),
schedule groups, and every function's handler imported in-process. It sets the
process environment to the template's function environment with each Ref and
GetAtt resolved to the local resource, so production code runs unchanged: only
endpoints and credentials differ. Then it serves the HTTP API routes, polls the
SQS event sources and ticks the schedules.

moto keeps its backends in module globals, so one runtime runs per process at
a time; ``stop()`` gives the process environment back as it found it.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import secrets as random_source
import string
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from funnel_dev import lambdas, moto_sqs
from funnel_dev.lambdas import ACCOUNT_ID, REGION, LambdaContext
from funnel_dev.template import (
    BUCKET,
    FUNCTION,
    HTTP_API,
    QUEUE,
    SCHEDULE_GROUP,
    SECRET,
    STATE_MACHINE,
    FunctionSpec,
    SamTemplate,
)

log = logging.getLogger("funnel_dev")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LOCAL_PARAMETERS = {"Environment": "local", "FrontendOrigin": "http://localhost:3000"}
# Variables whose template value points at cloud-only infrastructure (RDS Proxy,
# the DB secrets); the runtime sets them to the local cluster instead.
DATABASE_VARIABLES = ("FUNNEL_CONTROL_DATABASE_URL", "FUNNEL_ADMIN_DATABASE_URL", "FUNNEL_DB_APP_SECRET_ID",
                      "FUNNEL_DB_ADMIN_SECRET_ID")

_active_runtime: dict[str, LocalRuntime | None] = {"runtime": None}
_active_lock = threading.Lock()


class LocalRuntimeError(RuntimeError):
    """The local runtime cannot start (another one runs, a port is taken, the template is invalid)."""


def generate_secret_string(spec: dict) -> str:
    """What CloudFormation's GenerateSecretString produces, from the same properties."""
    length = int(spec.get("PasswordLength", 32))
    exclude = set(str(spec.get("ExcludeCharacters", "")))
    groups = []
    if not spec.get("ExcludeLowercase"):
        groups.append(string.ascii_lowercase)
    if not spec.get("ExcludeUppercase"):
        groups.append(string.ascii_uppercase)
    if not spec.get("ExcludeNumbers"):
        groups.append(string.digits)
    if not spec.get("ExcludePunctuation"):
        groups.append(string.punctuation)
    if spec.get("IncludeSpace"):
        groups.append(" ")
    groups = ["".join(c for c in group if c not in exclude) for group in groups]
    groups = [group for group in groups if group]
    alphabet = "".join(groups)
    while True:
        value = "".join(random_source.choice(alphabet) for _ in range(length))
        if not spec.get("RequireEachIncludedType", True) or all(any(c in g for c in value) for g in groups):
            break
    if "GenerateStringKey" in spec:
        document = json.loads(spec.get("SecretStringTemplate") or "{}")
        document[spec["GenerateStringKey"]] = value
        return json.dumps(document)
    return value


def _import_handler(spec: FunctionSpec):
    """Import ``CodeUri/<module>.py`` under a name unique to the function.

    Several functions have an ``app.py``; a plain ``import app`` would hand the
    second function the first one's module.
    """
    module_path, _, attribute = spec.handler.rpartition(".")
    file = spec.code_dir / (module_path.replace(".", "/") + ".py")
    if not file.exists():
        raise LocalRuntimeError(f"{spec.logical_id}: handler module {file} does not exist")
    module_name = f"funnel_local_functions.{spec.logical_id}"
    if module_name in sys.modules:
        return getattr(sys.modules[module_name], attribute)
    module_spec = importlib.util.spec_from_file_location(module_name, file)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    # Sibling modules of the handler import like they do on Lambda, where
    # CodeUri is the working directory on sys.path.
    sys.path.insert(0, str(spec.code_dir))
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    finally:
        sys.path.remove(str(spec.code_dir))
    return getattr(module, attribute)


def reset_funnel_caches() -> None:
    """Forget settings, clients, pools and directory entries made for the previous environment."""
    from funnel import observability, settings
    from funnel.platform import secrets

    settings.reset_settings()
    observability.reset()  # Powertools' service, metrics namespace and tracing, from the new environment
    secrets.reset_clients()  # and every cached boto3 client
    try:
        from funnel import db
        from funnel.platform.tenants import directory

        db.close_pools()
        directory.forget()
    except ImportError:  # psycopg missing: the runtime was started without a database
        pass


class LocalRuntime:
    def __init__(self, state_dir: str | Path, *, api_port: int = 8000, moto_port: int = 5055, pg_port: int = 5433,
                 time_scale: float = 1.0, tuned_for_tests: bool = False, project_root: str | Path = PROJECT_ROOT,
                 template_path: str | Path | None = None, extra_templates: Iterable[str | Path] = (),
                 ssrf_allow_hosts: Iterable[str] = (), parameter_overrides: dict[str, str] | None = None,
                 with_postgres: bool = True, host: str = "127.0.0.1"):
        self.state_dir = Path(state_dir).resolve()
        self.project_root = Path(project_root).resolve()
        self.template_path = Path(template_path or self.project_root / "template.yaml").resolve()
        self.extra_template_paths = [Path(p).resolve() for p in extra_templates]
        self.api_port, self.moto_port, self.pg_port = api_port, moto_port, pg_port
        self.host = host
        self.time_scale = time_scale
        self.tuned_for_tests = tuned_for_tests
        self.ssrf_allow_hosts = list(ssrf_allow_hosts)
        self.parameter_overrides = {**LOCAL_PARAMETERS, **(parameter_overrides or {})}
        self.with_postgres = with_postgres
        self.api_url = f"http://{host}:{api_port}"
        self.moto_url = f"http://{host}:{moto_port}"
        self.pg = None
        self.template: SamTemplate | None = None
        self.templates: list[SamTemplate] = []
        self.functions: dict[str, tuple[FunctionSpec, Any]] = {}
        self.state_machine_arns: dict[str, str] = {}
        self.queue_urls: dict[str, str] = {}
        self.startup_seconds: float | None = None
        self._clients: dict[str, Any] = {}
        self._moto_server = None
        self._gateway = None
        self._pollers: list = []
        self._scheduler = None
        self._store = None
        self._saved_environment: dict[str, str] | None = None
        self._running = False

    # ------------------------------------------------------------ lifecycle
    def __enter__(self) -> LocalRuntime:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> LocalRuntime:
        started = time.perf_counter()
        with _active_lock:
            if _active_runtime["runtime"] is not None:
                raise LocalRuntimeError("another LocalRuntime is running in this process (moto state is process-wide)")
            _active_runtime["runtime"] = self
        try:
            self._start()
        except BaseException:
            self._teardown(snapshot=False)
            raise
        self._running = True
        self.startup_seconds = time.perf_counter() - started
        log.info("local runtime started in %.2f s", self.startup_seconds)
        return self

    def _start(self) -> None:
        from funnel_dev.persistence import AwsStateStore

        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._saved_environment = dict(os.environ)
        if self.with_postgres:
            from funnel_dev.postgres import LocalPostgres

            self.pg = LocalPostgres(self.state_dir / "pg", self.pg_port, tuned_for_tests=self.tuned_for_tests).start()
        self._set_base_environment()
        self._start_moto()
        self._store = AwsStateStore(self.state_dir / "aws-state")
        first_start = not self._store.exists()
        self._store.restore_secrets(self.client("secretsmanager"))
        self._store.restore_s3(self.client("s3"))
        self.template = SamTemplate(self.template_path, self.parameter_overrides)
        self.templates = []
        self._load(self.template)
        for path in self.extra_template_paths:
            self._load(SamTemplate(path, self.parameter_overrides))
        self._store.restore_queues(self.client("sqs"))
        self._store.restore_schedules(self.client("scheduler"))
        self._set_template_environment()
        self._verify_sender()
        reset_funnel_caches()
        if self.pg is not None:  # data kept from an earlier start is brought up to the code's migrations
            self._migrate()
        self._start_workers(self._store.fired())
        if first_start:  # generated keys must survive even a killed process
            self.snapshot()

    def _migrate(self) -> None:
        from funnel.platform.migrations import migrate_all

        for result in migrate_all(workers=1):  # threads are running here, so no worker processes
            if not result.ok:
                log.error("tenant database of %s not migrated: %s", ",".join(result.tenant_slugs), result.error)

    def stop(self) -> None:
        if not self._running:
            return
        self._teardown(snapshot=True)
        self._running = False

    def restart(self) -> LocalRuntime:
        """Stop and start again on the same state directory and ports (what Ctrl-C and `make dev` do)."""
        self.stop()
        return self.start()

    def _teardown(self, snapshot: bool) -> None:
        # Every thread this runtime started ends here, before stop() returns: pollers, the scheduler, the
        # gateway and its request threads, state machine executions, moto's server (tests check it).
        for poller in self._pollers:
            poller.stop()
        if self._scheduler is not None:
            self._scheduler.stop()
        for poller in self._pollers:
            poller.join()
        if self._gateway is not None:
            self._gateway.stop()
        if self._moto_server is not None:
            self._stop_executions()
        if snapshot and self._moto_server is not None:
            try:
                self.snapshot()
            except Exception:
                log.exception("could not snapshot the AWS state to %s", self.state_dir / "aws-state")
        try:
            from funnel import db

            db.close_pools()
        except ImportError:
            pass
        if self._moto_server is not None:
            self._moto_server.stop()
        if self.pg is not None:
            self.pg.stop()
        self._gateway, self._scheduler, self._pollers, self._moto_server = None, None, [], None
        self._clients.clear()
        self.functions.clear()
        self.state_machine_arns.clear()
        self.queue_urls.clear()
        self.templates = []
        lambdas.unregister_all()
        if self._saved_environment is not None:
            os.environ.clear()
            os.environ.update(self._saved_environment)
            self._saved_environment = None
        reset_funnel_caches()
        with _active_lock:
            if _active_runtime["runtime"] is self:
                _active_runtime["runtime"] = None

    def _stop_executions(self) -> None:
        """Stop the state machine executions still running (moto runs each in threads of its own) and wait
        for their threads: an execution left running would invoke this runtime's functions after stop()."""
        from moto.stepfunctions.parser.utils import TMP_THREADS

        sfn = self.client("stepfunctions")
        for arn in self.state_machine_arns.values():
            try:
                running = sfn.list_executions(stateMachineArn=arn, statusFilter="RUNNING")["executions"]
                for execution in running:
                    sfn.stop_execution(executionArn=execution["executionArn"], cause="local runtime stopped")
            except Exception:
                log.exception("could not stop the executions of %s", arn)
        deadline = time.monotonic() + 30
        for thread in list(TMP_THREADS):
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.error("a state machine execution thread (%s) did not end within 30 s", thread.name)
            else:
                TMP_THREADS.remove(thread)

    def snapshot(self) -> None:
        """Write secrets, S3 objects, schedules and queued messages to ``<state_dir>/aws-state``."""
        self._store.snapshot(self.client, self._scheduler.fired if self._scheduler else self._store.fired())

    # ------------------------------------------------------------ environment
    def _set_base_environment(self) -> None:
        os.environ.update({
            "AWS_ENDPOINT_URL": self.moto_url,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "MOTO_PORT": str(self.moto_port),  # moto's Step Functions interpreter calls Lambda/SQS here
        })
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            os.environ.pop(name, None)

    def _local_overrides(self) -> dict[str, str]:
        overrides = {
            "FUNNEL_SSRF_ALLOW_HOSTS": ",".join(self.ssrf_allow_hosts),
            "FUNNEL_PUBLIC_BASE_URL": self.api_url,
            # The offline LLM provider runs the product with no API key; deployed stages never allow it.
            "FUNNEL_ALLOW_OFFLINE_LLM": "true",
            # No X-Ray daemon here: Powertools' Tracer records nothing (and funnel.observability never
            # imports the X-Ray SDK).
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        if self.pg is not None:
            overrides["FUNNEL_ADMIN_DATABASE_URL"] = self.pg.url()
            overrides["FUNNEL_CONTROL_DATABASE_URL"] = self.pg.url("funnel_control", "funnel_app")
        return overrides

    def template_environment(self) -> dict[str, str]:
        """Every function's Environment.Variables (Globals merged), resolved to local values."""
        variables: dict[str, str] = {}
        for template in self.templates:
            for spec in template.functions():
                props = template.function_properties(spec.logical_id)
                resolved = template.resolve(props.get("Environment", {}).get("Variables", {}))
                for name, value in resolved.items():
                    value = "" if value is None else str(value)
                    if name in variables and variables[name] != value:
                        log.warning("%s differs between functions (%r vs %r); the runtime shares one process "
                                    "environment, keep it in Globals", name, variables[name], value)
                    variables.setdefault(name, value)
        return variables

    def _set_template_environment(self) -> None:
        variables = self.template_environment()
        for name in DATABASE_VARIABLES:  # the local cluster trusts local connections: no credential secrets
            variables.pop(name, None)
            os.environ.pop(name, None)
        variables.update(self._local_overrides())
        os.environ.update(variables)

    # ------------------------------------------------------------ AWS
    def _start_moto(self) -> None:
        import requests
        from moto.server import ThreadedMotoServer

        logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)  # Fail states log huge reprs
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        lambdas.install(self.time_scale)
        moto_sqs.install()  # several pollers per queue, as MaximumConcurrency asks
        self._moto_server = ThreadedMotoServer(ip_address=self.host, port=self.moto_port, verbose=False)
        self._moto_server.start()
        # moto's backends are process globals: forget what a previous runtime left behind.
        requests.post(f"{self.moto_url}/moto-api/reset", timeout=30).raise_for_status()
        requests.post(f"{self.moto_url}/moto-api/config", timeout=30,
                      json={"stepfunctions": {"execute_state_machine": True},
                            "lambda": {"use_docker": False}}).raise_for_status()

    def client(self, service: str):
        """A boto3 client on the local moto server."""
        client = self._clients.get(service)
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client(service, endpoint_url=self.moto_url, region_name=REGION,
                                  aws_access_key_id="test", aws_secret_access_key="test",
                                  config=Config(retries={"max_attempts": 2}, inject_host_prefix=False))
            self._clients[service] = client
        return client

    def add_template(self, path: str | Path) -> SamTemplate:
        """Load another template into the running runtime (test fixtures), kept across restart()."""
        template = SamTemplate(path, self.parameter_overrides)
        self._load(template)
        self.extra_template_paths.append(template.path)
        self._set_template_environment()
        reset_funnel_caches()
        self._gateway.router = type(self._gateway.router)([r for t in self.templates for r in t.http_routes()])
        self._start_pollers(template)
        return template

    def _load(self, template: SamTemplate) -> None:
        for lid in template.of_type(FUNCTION):
            if lid in self.functions:
                raise LocalRuntimeError(f"function {lid} is declared by two loaded templates")
        self._create_secrets(template)
        self._create_buckets(template)
        self._create_queues(template)
        self._create_schedule_groups(template)
        self._create_ses_configuration_sets(template)
        self._register_functions(template)
        self._create_state_machines(template)
        self.templates.append(template)

    def _create_secrets(self, template: SamTemplate) -> None:
        client = self.client("secretsmanager")
        for lid, props in template.of_type(SECRET).items():
            name = str(template.resolve(props.get("Name", lid)))
            try:
                arn = client.describe_secret(SecretId=name)["ARN"]  # restored from the last run: keep its value
            except client.exceptions.ResourceNotFoundException:
                if "SecretString" in props:
                    value = str(template.resolve(props["SecretString"]))
                else:
                    value = generate_secret_string(template.resolve(props.get("GenerateSecretString", {})))
                arn = client.create_secret(Name=name, SecretString=value,
                                           Description=str(template.resolve(props.get("Description", ""))))["ARN"]
            template.physical[lid] = {"Ref": arn, "Id": arn}

    def _create_buckets(self, template: SamTemplate) -> None:
        client = self.client("s3")
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        for lid, props in template.of_type(BUCKET).items():
            name = str(template.resolve(props.get("BucketName", f"{lid.lower()}-local")))
            if name not in existing:
                client.create_bucket(Bucket=name)
            template.physical[lid] = {"Ref": name, "Arn": f"arn:aws:s3:::{name}",
                                      "DomainName": f"{name}.s3.amazonaws.com",
                                      "RegionalDomainName": f"{name}.s3.{REGION}.amazonaws.com"}

    def _create_queues(self, template: SamTemplate) -> None:
        client = self.client("sqs")
        queues = template.of_type(QUEUE)
        for lid, props in queues.items():
            fifo = bool(template.resolve(props.get("FifoQueue", False)))
            name = str(template.resolve(props.get("QueueName", lid + (".fifo" if fifo else ""))))
            attributes = {key: str(template.resolve(props[key])).lower() if isinstance(props[key], bool)
                          else str(template.resolve(props[key]))
                          for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds",
                                      "ReceiveMessageWaitTimeSeconds", "MaximumMessageSize", "FifoQueue",
                                      "ContentBasedDeduplication") if key in props}
            url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            template.physical[lid] = {"Ref": url, "QueueUrl": url, "QueueName": name,
                                      "Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}"}
            self.queue_urls[lid] = url
        for lid, props in queues.items():  # dead-letter queues exist now
            if "RedrivePolicy" in props:
                policy = template.resolve(props["RedrivePolicy"])
                client.set_queue_attributes(QueueUrl=template.physical[lid]["Ref"],
                                            Attributes={"RedrivePolicy": json.dumps(policy)})

    def _create_schedule_groups(self, template: SamTemplate) -> None:
        client = self.client("scheduler")
        existing = {g["Name"] for g in client.list_schedule_groups().get("ScheduleGroups", [])}
        for lid, props in template.of_type(SCHEDULE_GROUP).items():
            name = str(template.resolve(props.get("Name", lid)))
            if name not in existing:
                client.create_schedule_group(Name=name)
            template.physical[lid] = {"Ref": name,
                                      "Arn": f"arn:aws:scheduler:{REGION}:{ACCOUNT_ID}:schedule-group/{name}"}

    def _create_ses_configuration_sets(self, template: SamTemplate) -> None:
        client = self.client("ses")
        for lid, props in template.of_type("AWS::SES::ConfigurationSet").items():
            name = str(template.resolve(props.get("Name", lid)))
            try:
                client.create_configuration_set(ConfigurationSet={"Name": name})
            except client.exceptions.ConfigurationSetAlreadyExistsException:
                pass
            template.physical[lid] = {"Ref": name}

    def _verify_sender(self) -> None:
        """SES refuses unverified senders, in moto as on AWS; production verifies it once in the console."""
        sender = os.environ.get("FUNNEL_SES_FROM_ADDRESS")
        if sender:
            self.client("ses").verify_email_identity(EmailAddress=sender)

    def _register_functions(self, template: SamTemplate) -> None:
        for spec in template.functions():
            handler = _import_handler(spec)
            self.functions[spec.logical_id] = (spec, handler)
            lambdas.register([spec.name, spec.logical_id], self._bound_handler(spec, handler))

    @staticmethod
    def _bound_handler(spec: FunctionSpec, handler):
        def call(event, context):
            return lambdas.call_handler(handler, event, LambdaContext(spec.name, spec.timeout, spec.memory))
        return call

    def _create_state_machines(self, template: SamTemplate) -> None:
        client = self.client("stepfunctions")
        for lid, props in template.of_type(STATE_MACHINE).items():
            name = template.state_machine_name(lid)
            arn = client.create_state_machine(
                name=name, definition=template.substituted_definition(lid),
                roleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/{lid}",
                type=str(template.resolve(props.get("Type", "STANDARD"))))["stateMachineArn"]
            template.physical[lid] = {"Ref": arn, "Arn": arn, "Name": name}
            self.state_machine_arns[lid] = arn

    # ------------------------------------------------------------ workers
    def _start_workers(self, fired: dict[str, str]) -> None:
        from funnel_dev.gateway import LocalGateway
        from funnel_dev.scheduler import LocalScheduler

        cors = None
        for template in self.templates:
            for props in template.of_type(HTTP_API).values():
                if "CorsConfiguration" in props:
                    cors = template.resolve(props["CorsConfiguration"])
                    break
            if cors:
                break
        self._gateway = LocalGateway([r for t in self.templates for r in t.http_routes()], self.invoke,
                                     host=self.host, port=self.api_port, cors=cors)
        self._gateway.start()
        for template in self.templates:
            self._start_pollers(template)
        self._scheduler = LocalScheduler(
            self.client("scheduler"), self.client("sqs"), self.client("stepfunctions"), lambdas.invoke,
            self._template_schedule_entries, tick_seconds=0.1 if self.tuned_for_tests else 1.0, fired=fired)
        self._scheduler.start()

    def _start_pollers(self, template: SamTemplate) -> None:
        from funnel_dev.pollers import SqsPoller

        for source in template.sqs_event_sources():
            if not source.enabled:
                continue
            queue_arn = str(template.resolve(source.queue))
            queue_name = queue_arn.rsplit(":", 1)[-1]
            queue_url = self.client("sqs").get_queue_url(QueueName=queue_name)["QueueUrl"]
            for index in range(source.maximum_concurrency):  # one thread per concurrent invocation, as Lambda scales
                # Tests want short polls so stop() is quick; dev long-polls like Lambda does. A short-polling
                # thread that finds the queue empty sleeps before the next poll: the first one of a source
                # briefly (a test waits on it), the others longer, as Lambda adds pollers only when messages
                # are there: some 30 idle threads polling moto 20 times a second each would take the CPU
                # the handlers under test need.
                idle_sleep = (0.05 if index == 0 else 0.5) if self.tuned_for_tests else 0.0
                poller = SqsPoller(
                    self.client("sqs"), source.function_id, queue_url, queue_arn, source.batch_size,
                    source.report_batch_item_failures, self.invoke, time_scale=self.time_scale,
                    wait_seconds=0 if self.tuned_for_tests else 1, idle_sleep=idle_sleep,
                    on_exit=self._function_shutdown(source.function_id))
                poller.start()
                self._pollers.append(poller)

    def _function_shutdown(self, logical_id: str):
        """The handler module's ``shutdown()`` (releases the calling thread's warm resources), if it has one:
        each poller thread is one execution environment of the function, and it ends with the poller."""
        return getattr(self.handler_module(logical_id), "shutdown", None)

    def _template_schedule_entries(self):
        from funnel_dev.scheduler import ScheduleEntry

        entries = []
        for template in self.templates:
            for event in template.schedule_events():
                spec, _ = self.functions[event.function_id]
                if event.kind == "Schedule" and event.payload is None:
                    payload = {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
                               "source": "aws.events", "account": ACCOUNT_ID, "region": REGION,
                               "resources": [
                                   f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{spec.name}-{event.event_name}"],
                               "detail": {}}
                else:
                    payload = event.payload if event.payload is not None else {}
                entries.append(ScheduleEntry(
                    key=f"template:{event.function_id}.{event.event_name}", expression=event.expression,
                    timezone=event.timezone, enabled=event.enabled,
                    fire=lambda lid=event.function_id, body=payload: self.invoke(lid, body)))
        return entries

    # ------------------------------------------------------------ helpers
    def invoke(self, logical_id: str, event: Any) -> Any:
        """Call a function's handler in-process, as a synchronous Lambda invoke would."""
        if logical_id not in self.functions:
            raise KeyError(f"no function {logical_id!r} in the loaded templates")
        spec, handler = self.functions[logical_id]
        return lambdas.call_handler(handler, event, LambdaContext(spec.name, spec.timeout, spec.memory))

    def state_machine_arn(self, logical_id: str) -> str:
        return self.state_machine_arns[logical_id]

    def run_state_machine(self, logical_id: str, input: dict, timeout: float = 60) -> dict:  # noqa: A002
        """Start an execution and wait for it to leave RUNNING; the describe_execution result."""
        sfn = self.client("stepfunctions")
        # An explicit name: moto names unnamed executions "None", so the second one would collide.
        execution = sfn.start_execution(stateMachineArn=self.state_machine_arns[logical_id], input=json.dumps(input),
                                        name=uuid.uuid4().hex)
        deadline = time.monotonic() + timeout
        while True:
            described = sfn.describe_execution(executionArn=execution["executionArn"])
            if described["status"] != "RUNNING":
                return described
            if time.monotonic() > deadline:
                raise TimeoutError(f"{logical_id} still RUNNING after {timeout} s: {execution['executionArn']}")
            time.sleep(0.02)

    def tick_scheduler(self, now: datetime | None = None) -> list[str]:
        """Fire what is due at ``now`` (default: the present) instead of waiting for the next tick."""
        return self._scheduler.tick(now)

    def handler_module(self, logical_id: str):
        """The module a function's handler was imported from (its unique name; see _import_handler)."""
        return sys.modules[f"funnel_local_functions.{logical_id}"]
