"""Platform API: auth, me, users, API keys, audit log, runs, prompts, LLM registry (here), and one router per
account concern: sign-up and e-mail verification (``routes_signup``), password reset and change
(``routes_recovery``), sign-in with an OpenID provider (``routes_oidc``), the workspace's settings
(``routes_settings``), its export (``routes_export``) and deletion (``routes_deletion``)."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request
from pydantic import Field

from funnel import db
from funnel.api.context import client_ip
from funnel.api.contract import Page, problem_response, problems
from funnel.api.deps import Admin, CurrentPrincipal, Cursor, Email, Limit, StrictModel, Writer, page_of
from funnel.api.routing import add_concern_routes
from funnel.platform import (
    audit,
    auth,
    llm_registry,
    prompts,
    routes_deletion,
    routes_export,
    routes_oidc,
    routes_recovery,
    routes_settings,
    routes_signup,
    runs,
    users,
)
from funnel.platform.models import (
    ApiKey,
    ApiKeyCreated,
    AuditLogEntry,
    CurrentUser,
    LlmModelList,
    LlmProviderList,
    Prompt,
    PromptList,
    Role,
    Run,
    RunArtifactList,
    RunStepList,
    StepLlmDefaultList,
    TenantStepModel,
    TokenPair,
    User,
    UserInvited,
)
from funnel.platform.models_settings import StepModelBody
from funnel.platform.storage import presigned_url

router = APIRouter(prefix="/v1")


class LoginBody(StrictModel):
    # Any string: an account's address is whatever it was created with; format checks belong to sign-up.
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)
    tenant: str | None = Field(default=None, max_length=63, description="workspace slug, when the e-mail has several")


class RefreshBody(StrictModel):
    refresh_token: str = Field(min_length=1, max_length=4096)


class AcceptInviteBody(StrictModel):
    token: str = Field(min_length=1, max_length=4096)
    password: str = Field(min_length=10, max_length=1024)


LOGIN_PROBLEMS = problems(
    401, 422, 429,
    validation="The request is not valid, or the password is right for several workspaces of the e-mail and "
               "`tenant` does not name one (`tenants` lists those workspaces' slugs; a wrong password is a 401)",
    rate_limited="Too many attempts for this account or address; retry after `Retry-After` seconds (the time "
                 "left in the window that refused it)")
LOGIN_PROBLEMS[429]["headers"] = {"Retry-After": {"description": "seconds until the window that refused the "
                                                                 "attempt ends", "schema": {"type": "integer"}}}


@router.post("/auth/login", tags=["auth"], responses=LOGIN_PROBLEMS)
def login(body: LoginBody, request: Request) -> TokenPair:
    return TokenPair.model_validate(auth.login(body.email, body.password, body.tenant, client_ip(request)))


@router.post("/auth/refresh", tags=["auth"], responses={401: problem_response(
    401, "The refresh token is invalid, expired, revoked or already used (using one twice revokes its session: "
         "sign in again)")})
def refresh(body: RefreshBody) -> TokenPair:
    """New tokens for the session; the refresh token sent is spent (use the new one next time)."""
    return TokenPair.model_validate(auth.refresh(body.refresh_token))


class LogoutBody(StrictModel):
    refresh_token: str = Field(min_length=1, max_length=4096)
    everywhere: bool = Field(default=False, description="end every session of the user, not only this one "
                                                        "(needs the session's current refresh token)")


@router.post("/auth/logout", status_code=204, tags=["auth"], responses={401: problem_response(
    401, "The refresh token is invalid or expired (with `everywhere`: also revoked or already used)")})
def logout(body: LogoutBody) -> None:
    """End this session (its refresh and access tokens), or with `everywhere` all the user's sessions."""
    auth.logout(body.refresh_token, body.everywhere)


@router.post("/auth/accept-invite", tags=["auth"], responses=problems(
    401, 404, not_found="The invitation was already used, or the user is disabled"))
def accept_invite(body: AcceptInviteBody) -> User:
    return User.model_validate(users.accept_invite(body.token, body.password))


@router.get("/me", tags=["auth"])
def me(principal: CurrentPrincipal) -> CurrentUser:
    return CurrentUser.model_validate(users.current_user(principal))


class UserInviteBody(StrictModel):
    email: Email
    role: Role = "member"
    display_name: str | None = Field(default=None, max_length=200)


class UserPatch(StrictModel):
    role: Role | None = None
    disabled: bool | None = None
    display_name: str | None = Field(default=None, max_length=200)
    max_concurrency: int | None = Field(default=None, ge=1, le=50)


@router.post("/users", status_code=201, tags=["users"], responses=problems(
    402, 409, conflict="A user with this e-mail exists",
    payment_required="The plan's seats are all taken: `type` ends in `plan-limit-reached`, `limit` is `seats` "
                     "(with `limit_value`, `used`, `plan`; see funnel.billing.limits.PLAN_LIMIT_402)"))
def invite_user(body: UserInviteBody, principal: Admin) -> UserInvited:
    user, token = users.invite_user(principal, email=body.email, role=body.role, display_name=body.display_name)
    return UserInvited.model_validate({**user, "invite_token": token})


@router.get("/users", tags=["users"])
def list_users(principal: CurrentPrincipal, limit: Limit = 50, cursor: Cursor = None) -> Page[User]:
    return page_of(User, users.list_users(principal, cursor, limit))


@router.get("/users/{user_id}", tags=["users"], responses=problems(404))
def get_user(user_id: UUID, principal: CurrentPrincipal) -> User:
    return User.model_validate(users.get_user(principal, str(user_id)))


@router.patch("/users/{user_id}", tags=["users"], responses=problems(
    402, 404, 409, conflict="The workspace would lose its last active owner",
    payment_required="Enabling the user again needs a seat and the plan's are all taken (`limit` is `seats`)"))
def update_user(user_id: UUID, body: UserPatch, principal: Admin) -> User:
    return User.model_validate(users.update_user(principal, str(user_id), **body.model_dump(exclude_none=True)))


class ApiKeyBody(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    scope: Literal["read", "write", "admin"] = "write"
    expires_at: datetime | None = None


@router.post("/api-keys", status_code=201, tags=["api-keys"])
def create_api_key(body: ApiKeyBody, principal: Writer) -> ApiKeyCreated:
    return ApiKeyCreated.model_validate(auth.create_api_key(principal, body.name, body.scope, body.expires_at))


@router.get("/api-keys", tags=["api-keys"])
def list_api_keys(principal: CurrentPrincipal, limit: Limit = 50, cursor: Cursor = None) -> Page[ApiKey]:
    return page_of(ApiKey, auth.list_api_keys(principal, cursor, limit))


@router.delete("/api-keys/{api_key_id}", tags=["api-keys"], responses=problems(404))
def revoke_api_key(api_key_id: UUID, principal: Writer) -> ApiKey:
    return ApiKey.model_validate(auth.revoke_api_key(principal, str(api_key_id)))


@router.get("/audit-logs", tags=["audit"])
def list_audit_logs(principal: Admin, limit: Limit = 50, cursor: Cursor = None,
                    user_id: str | None = Query(default=None, max_length=100),
                    action: str | None = Query(default=None, max_length=100),
                    resource_type: str | None = Query(default=None, max_length=100),
                    resource_id: str | None = Query(default=None, max_length=100),
                    since: datetime | None = None, until: datetime | None = None) -> Page[AuditLogEntry]:
    with db.tenant_transaction(principal.tenant_id) as conn:
        page = audit.list_entries(conn, user_id=user_id, action=action, resource_type=resource_type,
                                  resource_id=resource_id, since=since, until=until, cursor=cursor, limit=limit)
    return page_of(AuditLogEntry, page)


def _with_progress(run: dict[str, Any]) -> Run:
    total = run["steps_total"] or 0
    return Run.model_validate({**run, "progress": {
        "steps_done": run["steps_done"], "steps_total": total,
        "percent": round(100 * run["steps_done"] / total, 1) if total else None}})


@router.get("/runs", tags=["runs"])
def list_runs(principal: CurrentPrincipal, limit: Limit = 50, cursor: Cursor = None,
              kind: str | None = Query(default=None, max_length=50),
              status: str | None = Query(default=None, max_length=20)) -> Page[Run]:
    with db.tenant_transaction(principal.tenant_id) as conn:
        page = runs.list_runs(conn, cursor, limit, kind, status)
    return Page[Run](items=[_with_progress(r) for r in page.items], next_cursor=page.next_cursor)


@router.get("/runs/{run_id}", tags=["runs"], responses=problems(404))
def get_run(run_id: UUID, principal: CurrentPrincipal) -> Run:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return _with_progress(runs.get_run(conn, str(run_id)))


@router.get("/runs/{run_id}/steps", tags=["runs"], responses=problems(404))
def list_steps(run_id: UUID, principal: CurrentPrincipal) -> RunStepList:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return RunStepList.model_validate({"items": runs.list_steps(conn, str(run_id))})


@router.get("/runs/{run_id}/artifacts", tags=["runs"], response_model_exclude_unset=True, responses=problems(404))
def list_artifacts(run_id: UUID, principal: CurrentPrincipal) -> RunArtifactList:
    with db.tenant_transaction(principal.tenant_id) as conn:
        items = runs.list_artifacts(conn, str(run_id))
    return RunArtifactList.model_validate({"items": [{**a, "download_url": presigned_url(a["file_path"])}
                                                     for a in items]})


class PromptBody(StrictModel):
    step: str = Field(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_]*$")
    content: str = Field(min_length=1, max_length=100_000)
    variables: list[str] = Field(default_factory=list, max_length=100)
    activate: bool = True


@router.post("/prompts", status_code=201, tags=["prompts"], responses=problems(
    422, validation="The request is not valid, or `variables` does not match the `{{placeholders}}` of `content`"))
def create_prompt(body: PromptBody, principal: Admin) -> Prompt:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Prompt.model_validate(
            prompts.create_prompt(conn, principal, body.step, body.content, body.variables, body.activate))


@router.get("/prompts", tags=["prompts"])
def list_prompts(principal: CurrentPrincipal, step: str | None = Query(default=None, max_length=100)) -> PromptList:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return PromptList.model_validate({"items": prompts.list_prompts(conn, step)})


@router.post("/prompts/{prompt_id}/activate", tags=["prompts"], responses=problems(404))
def activate_prompt(prompt_id: int, principal: Admin) -> Prompt:
    with db.tenant_transaction(principal.tenant_id) as conn:
        return Prompt.model_validate(prompts.activate_prompt(conn, principal, prompt_id))


@router.get("/llm/providers", tags=["llm"])
def list_llm_providers(principal: CurrentPrincipal) -> LlmProviderList:
    return LlmProviderList.model_validate({"items": llm_registry.list_providers()})


@router.get("/llm/models", tags=["llm"])
def list_llm_models(principal: CurrentPrincipal) -> LlmModelList:
    return LlmModelList.model_validate({"items": llm_registry.list_models()})


@router.get("/llm/step-defaults", tags=["llm"], response_model_exclude_unset=True)
def list_step_defaults(principal: CurrentPrincipal) -> StepLlmDefaultList:
    return StepLlmDefaultList.model_validate({"items": llm_registry.step_defaults(principal)})


@router.put("/llm/step-defaults/{step}", tags=["llm"], response_model_exclude_unset=True, responses=problems(
    404, not_found="No active model of that provider (and class or name) exists"))
def set_tenant_step_model(step: str, body: StepModelBody, principal: Admin) -> TenantStepModel:
    """A tenant's own model choice for a step; the global registry is changed with `funnel llm`."""
    choice = body.model_dump(exclude_none=True)
    return TenantStepModel.model_validate(llm_registry.set_tenant_step_model(principal, step, choice))


for _concern in (routes_signup, routes_recovery, routes_oidc, routes_settings, routes_export, routes_deletion):
    add_concern_routes(router, _concern.router)
