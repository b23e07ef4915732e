"""template.yaml, read the way the local runtime needs it.

The template is parsed with cfn-lint's decoder (it understands ``!Ref``,
``!GetAtt``, ``!Sub``...). Intrinsic functions are resolved to *local* values:
parameters take their Default (or a local override), pseudo parameters are the
moto account/region, and a resource's Ref/GetAtt is whatever the runtime
recorded when it created the local counterpart (queue URL, secret ARN...).
Resources the runtime does not emulate (RDS, VPC, IAM) resolve to a readable
placeholder; the runtime overrides the few variables that point at them
(database URLs) with the local cluster.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from funnel_dev.lambdas import ACCOUNT_ID, REGION, function_arn

FUNCTION = "AWS::Serverless::Function"
STATE_MACHINE = "AWS::Serverless::StateMachine"
QUEUE = "AWS::SQS::Queue"
BUCKET = "AWS::S3::Bucket"
SECRET = "AWS::SecretsManager::Secret"
SCHEDULE_GROUP = "AWS::Scheduler::ScheduleGroup"
HTTP_API = "AWS::Serverless::HttpApi"

PSEUDO_PARAMETERS = {
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT_ID,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "funnel-local",
    "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/funnel-local/local",
    "AWS::NotificationARNs": [],
}
_NO_VALUE = object()
_SUB_PLACEHOLDER = re.compile(r"\$\{([^}!][^}]*)\}")


class TemplateError(ValueError):
    pass


def load_yaml(path: Path) -> dict:
    from cfnlint.decode import decode_str

    document, problems = decode_str(Path(path).read_text())
    if problems:
        raise TemplateError(f"{path}: " + "; ".join(str(problem) for problem in problems))
    return _plain(document)


def _plain(value: Any) -> Any:
    """cfn-lint returns its own dict/str subclasses (with line marks); tests and moto want plain ones."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, str):
        return str(value)
    return value


@dataclass
class HttpRoute:
    method: str            # upper case, or "ANY"
    path: str              # "/v1/{proxy+}", "$default"
    function_id: str
    api_id: str | None

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"


@dataclass
class SqsEventSource:
    function_id: str
    event_name: str
    queue: Any             # the Queue property as written (usually !GetAtt X.Arn)
    batch_size: int
    report_batch_item_failures: bool
    enabled: bool
    # ScalingConfig.MaximumConcurrency: how many invocations Lambda runs at once for this queue.
    maximum_concurrency: int = 1


@dataclass
class ScheduleEvent:
    function_id: str
    event_name: str
    expression: str
    timezone: str
    payload: Any           # what the function receives on each firing
    enabled: bool
    kind: str              # "ScheduleV2" or "Schedule"


@dataclass
class FunctionSpec:
    logical_id: str
    name: str
    code_dir: Path
    handler: str
    timeout: float
    memory: int
    events: dict = field(default_factory=dict)


class SamTemplate:
    def __init__(self, path: str | Path, parameter_overrides: dict[str, str] | None = None):
        self.path = Path(path).resolve()
        self.root = self.path.parent
        self.document = load_yaml(self.path)
        self.resources: dict[str, dict] = self.document.get("Resources", {})
        self.globals_function: dict = self.document.get("Globals", {}).get("Function", {})
        self.parameters: dict[str, Any] = {}
        for name, spec in self.document.get("Parameters", {}).items():
            value = (parameter_overrides or {}).get(name, spec.get("Default", f"local-{name}"))
            declared_type = str(spec.get("Type", ""))
            if "List<" in declared_type or declared_type == "CommaDelimitedList":
                value = value if isinstance(value, list) else [part for part in str(value).split(",") if part]
            self.parameters[name] = value
        # logical id -> {"Ref": ..., "<Attr>": ...}: filled by the runtime as it creates local resources.
        self.physical: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------ queries
    def of_type(self, resource_type: str) -> dict[str, dict]:
        return {lid: r.get("Properties", {}) or {} for lid, r in self.resources.items()
                if r.get("Type") == resource_type}

    def function_properties(self, logical_id: str) -> dict:
        merged = dict(self.globals_function)
        own = self.resources[logical_id].get("Properties", {}) or {}
        for key, value in own.items():
            if key == "Environment":  # SAM merges the variable maps, the function's own winning
                merged_vars = dict(merged.get("Environment", {}).get("Variables", {}))
                merged_vars.update(value.get("Variables", {}))
                merged[key] = {"Variables": merged_vars}
            else:
                merged[key] = value
        return merged

    def functions(self) -> list[FunctionSpec]:
        specs = []
        for lid in self.of_type(FUNCTION):
            props = self.function_properties(lid)
            if props.get("PackageType") == "Image" and "ImageUri" in props and "CodeUri" not in props:
                code_dir = self.root / str(self.resources[lid].get("Metadata", {}).get("DockerContext", "."))
            else:
                code_dir = self.root / str(props.get("CodeUri", "."))
            specs.append(FunctionSpec(
                logical_id=lid, name=self.function_name(lid), code_dir=code_dir.resolve(),
                handler=str(props.get("Handler") or self._image_handler(lid)),
                timeout=float(props.get("Timeout", 3)), memory=int(props.get("MemorySize", 128)),
                events=props.get("Events", {}) or {}))
        return specs

    def _image_handler(self, logical_id: str) -> str:
        """Container-image functions name their handler in ImageConfig.Command."""
        props = self.function_properties(logical_id)
        command = (props.get("ImageConfig") or {}).get("Command") or []
        if not command:
            raise TemplateError(f"{logical_id}: no Handler (zip) or ImageConfig.Command (image)")
        return command[0]

    def function_name(self, logical_id: str) -> str:
        props = self.resources[logical_id].get("Properties", {}) or {}
        return str(self.resolve(props["FunctionName"])) if "FunctionName" in props else logical_id

    def state_machine_name(self, logical_id: str) -> str:
        props = self.resources[logical_id].get("Properties", {}) or {}
        return str(self.resolve(props["Name"])) if "Name" in props else logical_id

    def http_routes(self) -> list[HttpRoute]:
        routes = []
        for spec in self.functions():
            for event in spec.events.values():
                if event.get("Type") != "HttpApi":
                    continue
                props = event.get("Properties", {}) or {}
                api = props.get("ApiId")
                routes.append(HttpRoute(method=str(props.get("Method", "ANY")).upper(),
                                        path=str(props.get("Path", "$default")), function_id=spec.logical_id,
                                        api_id=api.get("Ref") if isinstance(api, dict) else None))
        return routes

    def sqs_event_sources(self) -> list[SqsEventSource]:
        sources = []
        for spec in self.functions():
            for event_name, event in spec.events.items():
                if event.get("Type") != "SQS":
                    continue
                props = event.get("Properties", {}) or {}
                scaling = self.resolve(props.get("ScalingConfig") or {})
                sources.append(SqsEventSource(
                    function_id=spec.logical_id, event_name=event_name, queue=props.get("Queue"),
                    batch_size=int(props.get("BatchSize", 10)),
                    report_batch_item_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
                    enabled=bool(props.get("Enabled", True)),
                    maximum_concurrency=int(scaling.get("MaximumConcurrency", 1))))
        return sources

    def schedule_events(self) -> list[ScheduleEvent]:
        events = []
        for spec in self.functions():
            for event_name, event in spec.events.items():
                kind = event.get("Type")
                if kind not in ("ScheduleV2", "Schedule"):
                    continue
                props = event.get("Properties", {}) or {}
                expression = str(self.resolve(props.get("ScheduleExpression") if kind == "ScheduleV2"
                                              else props.get("Schedule")))
                raw_input = self.resolve(props.get("Input")) if "Input" in props else None
                payload = json.loads(raw_input) if isinstance(raw_input, str) else raw_input
                if kind == "ScheduleV2":
                    enabled = str(props.get("State", "ENABLED")).upper() == "ENABLED"
                else:
                    enabled = (bool(props.get("Enabled", True))
                               and str(props.get("State", "ENABLED")).upper() == "ENABLED")
                events.append(ScheduleEvent(
                    function_id=spec.logical_id, event_name=event_name, expression=expression,
                    timezone=str(self.resolve(props.get("ScheduleExpressionTimezone", "UTC"))),
                    payload=payload, enabled=enabled, kind=kind))
        return events

    def state_machine_definition(self, logical_id: str) -> tuple[str, dict[str, Any]]:
        """The definition text and its DefinitionSubstitutions as written (unresolved)."""
        props = self.resources[logical_id].get("Properties", {}) or {}
        if "DefinitionUri" in props:
            text = (self.root / str(props["DefinitionUri"])).read_text()
        elif "Definition" in props:
            text = json.dumps(props["Definition"])
        else:
            raise TemplateError(f"{logical_id}: neither DefinitionUri nor Definition")
        return text, dict(props.get("DefinitionSubstitutions", {}) or {})

    def substituted_definition(self, logical_id: str) -> str:
        text, substitutions = self.state_machine_definition(logical_id)
        values = {key: self.resolve(value) for key, value in substitutions.items()}
        missing = sorted(set(definition_placeholders(text)) - set(values))
        if missing:
            raise TemplateError(f"{logical_id}: placeholders without a DefinitionSubstitution: {missing}")
        return _SUB_PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)

    # ------------------------------------------------------------ intrinsic functions
    def resolve(self, value: Any) -> Any:
        resolved = self._resolve(value)
        return None if resolved is _NO_VALUE else resolved

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in (self._resolve(v) for v in value) if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, argument), = value.items()
            if key == "Ref":
                return self._ref(argument)
            if key == "Fn::GetAtt":
                logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self._get_att(logical_id, attribute)
            if key == "Fn::Sub":
                return self._sub(argument)
            if key == "Fn::Join":
                separator, items = argument
                return separator.join(str(item) for item in self._resolve(items))
            if key == "Fn::Select":
                index, items = argument
                return self._resolve(items)[int(self._resolve(index))]
            if key == "Fn::Split":
                separator, text = argument
                return str(self._resolve(text)).split(separator)
            if key == "Fn::If":
                condition, when_true, when_false = argument
                return self._resolve(when_true if self.condition(condition) else when_false)
            if key == "Fn::ToJsonString":
                return json.dumps(self._resolve(argument))
        return {key: item for key, item in ((k, self._resolve(v)) for k, v in value.items()) if item is not _NO_VALUE}

    def condition(self, name_or_expression: Any) -> bool:
        if isinstance(name_or_expression, str):
            return self.condition(self.document.get("Conditions", {})[name_or_expression])
        (key, argument), = name_or_expression.items()
        if key == "Fn::Equals":
            return self._resolve(argument[0]) == self._resolve(argument[1])
        if key == "Fn::Not":
            return not self.condition(argument[0])
        if key == "Fn::And":
            return all(self.condition(item) for item in argument)
        if key == "Fn::Or":
            return any(self.condition(item) for item in argument)
        if key == "Condition":
            return self.condition(argument)
        raise TemplateError(f"unsupported condition {key}")

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.physical and "Ref" in self.physical[name]:
            return self.physical[name]["Ref"]
        if name in self.resources:
            return self._default_physical(name, "Ref")
        raise TemplateError(f"Ref to unknown name {name!r}")

    def _get_att(self, logical_id: str, attribute: str) -> Any:
        if logical_id in self.physical and attribute in self.physical[logical_id]:
            return self.physical[logical_id][attribute]
        if logical_id not in self.resources:
            raise TemplateError(f"GetAtt on unknown resource {logical_id!r}")
        return self._default_physical(logical_id, attribute)

    def _default_physical(self, logical_id: str, attribute: str) -> str:
        """Values known without creating anything, and placeholders for resources that are not emulated."""
        resource_type = self.resources[logical_id].get("Type")
        if resource_type == FUNCTION:
            name = self.function_name(logical_id)
            return name if attribute == "Ref" else function_arn(name)
        if resource_type == STATE_MACHINE:
            name = self.state_machine_name(logical_id)
            arn = f"arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:{name}"
            return name if attribute == "Name" else arn
        if resource_type == "AWS::IAM::Role":
            return logical_id if attribute == "Ref" else f"arn:aws:iam::{ACCOUNT_ID}:role/{logical_id}"
        return f"local-{logical_id}" if attribute == "Ref" else f"local-{logical_id}-{attribute}"

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])
        local_values = {key: self._resolve(value) for key, value in variables.items()}

        def replace(match: re.Match) -> str:
            name = match.group(1)
            if name in local_values:
                return str(local_values[name])
            if "." in name and name.split(".", 1)[0] in self.resources:
                logical_id, attribute = name.split(".", 1)
                return str(self._get_att(logical_id, attribute))
            return str(self._ref(name))

        return _SUB_PLACEHOLDER.sub(replace, text).replace("${!", "${")


def definition_placeholders(text: str) -> list[str]:
    """``${Name}`` placeholders of a state machine definition (DefinitionSubstitutions keys)."""
    return _SUB_PLACEHOLDER.findall(text)
