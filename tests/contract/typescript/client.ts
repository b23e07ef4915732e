// A small client of the Funnel API, as a frontend would write it: types generated from /openapi.json by
// openapi-typescript (./api.d.ts, written by tests/contract/test_typescript_client.py), requests through
// openapi-fetch. No casts, no `any`: if a route's response is untyped (`{[key: string]: unknown}`), reading a
// field of it does not type-check and the test fails with tsc's output.
//
// Run with node (FUNNEL_API_URL, FUNNEL_API_KEY), it also checks at run time that every field it reads is
// there with the type the document promises, and prints what it checked as JSON.
import createClient from "openapi-fetch";
import type { paths } from "./api";

declare const process: { env: Record<string, string | undefined>; exitCode?: number };

const client = createClient<paths>({
  baseUrl: process.env.FUNNEL_API_URL ?? "http://127.0.0.1:3000",
  headers: { "X-Api-Key": process.env.FUNNEL_API_KEY ?? "" },
});

const checked: Record<string, number> = {};

function check(area: string, ...values: [unknown, "string" | "number" | "boolean" | "object", boolean?][]): void {
  for (const [value, type, nullable] of values) {
    const ok = typeof value === type && value !== null || (nullable === true && value === null);
    if (!ok) {
      throw new Error(`${area}: expected ${type}${nullable ? " | null" : ""}, got ${JSON.stringify(value)}`);
    }
  }
  checked[area] = (checked[area] ?? 0) + 1;
}

function fail(what: string, error: unknown): never {
  throw new Error(`${what} failed: ${JSON.stringify(error)}`);
}

async function platform(): Promise<void> {
  const me = await client.GET("/v1/me");
  if (!me.data) fail("GET /v1/me", me.error);
  const email: string = me.data.email;
  const role: string = me.data.effective_role;
  const tenantId: string = me.data.tenant_id;
  check("me", [email, "string"], [role, "string"], [tenantId, "string"]);

  const users = await client.GET("/v1/users", { params: { query: { limit: 10 } } });
  if (!users.data) fail("GET /v1/users", users.error);
  for (const user of users.data.items) {
    const address: string = user.email;
    const name: string | null = user.display_name;
    const disabled: boolean = user.disabled;
    check("users", [address, "string"], [name, "string", true], [disabled, "boolean"]);
  }

  const keys = await client.GET("/v1/api-keys");
  if (!keys.data) fail("GET /v1/api-keys", keys.error);
  for (const key of keys.data.items) {
    const prefix: string = key.prefix;
    const scope: string = key.scope;
    const revoked: string | null = key.revoked_at;
    check("api_keys", [prefix, "string"], [scope, "string"], [revoked, "string", true]);
  }

  const runs = await client.GET("/v1/runs", { params: { query: { limit: 5 } } });
  if (!runs.data) fail("GET /v1/runs", runs.error);
  for (const run of runs.data.items) {
    const status: string = run.status;
    const kind: string = run.kind;
    const done: number = run.steps_done;
    check("runs", [status, "string"], [kind, "string"], [done, "number"]);
    const steps = await client.GET("/v1/runs/{run_id}/steps", { params: { path: { run_id: run.id } } });
    if (!steps.data) fail("GET /v1/runs/{run_id}/steps", steps.error);
    for (const step of steps.data.items) {
      const name: string = step.step;
      const stepStatus: string = step.status;
      const retries: number = step.retry_count;
      check("run_steps", [name, "string"], [stepStatus, "string"], [retries, "number"]);
    }
  }
}

async function outreach(): Promise<void> {
  const contacts = await client.GET("/v1/contacts", { params: { query: { limit: 10 } } });
  if (!contacts.data) fail("GET /v1/contacts", contacts.error);
  for (const contact of contacts.data.items) {
    const company: string = contact.company_name;
    const email: string | null = contact.email;
    const created: string = contact.created_at;
    check("contacts", [company, "string"], [email, "string", true], [created, "string"]);
  }

  const templates = await client.GET("/v1/templates");
  if (!templates.data) fail("GET /v1/templates", templates.error);
  for (const template of templates.data.items) {
    const title: string = template.title;
    const body: string = template.body;
    const active: boolean = template.is_active;
    check("templates", [title, "string"], [body, "string"], [active, "boolean"]);
  }

  const tasks = await client.GET("/v1/tasks");
  if (!tasks.data) fail("GET /v1/tasks", tasks.error);
  for (const task of tasks.data.items) {
    const name: string = task.name;
    const status: string = task.status;
    check("tasks", [name, "string"], [status, "string"]);
    const targets = await client.GET("/v1/tasks/{task_id}/targets", { params: { path: { task_id: task.id } } });
    if (!targets.data) fail("GET /v1/tasks/{task_id}/targets", targets.error);
    for (const target of targets.data.items) {
      const targetStatus: string = target.status;
      const retries: number = target.retry_count;
      check("task_targets", [targetStatus, "string"], [retries, "number"]);
    }
  }
}

async function email(): Promise<void> {
  const campaigns = await client.GET("/v1/email-campaigns", { params: { query: { limit: 10 } } });
  if (!campaigns.data) fail("GET /v1/email-campaigns", campaigns.error);
  for (const campaign of campaigns.data.items) {
    const subject: string = campaign.subject;
    const status: "draft" | "scheduled" | "sending" | "sent" | "partial" | "failed" | "cancelled" = campaign.status;
    const error: string | null = campaign.error;
    const sendAt: string | null = campaign.send_at;
    check("email_campaigns", [subject, "string"], [status, "string"], [error, "string", true],
      [sendAt, "string", true]);

    const stats = await client.GET("/v1/email-campaigns/{campaign_id}/stats",
      { params: { path: { campaign_id: campaign.id } } });
    if (!stats.data) fail("GET /v1/email-campaigns/{campaign_id}/stats", stats.error);
    const opened: number = stats.data.opened.unique;
    const clicks: number = stats.data.clicked.total;
    const sent: number = stats.data.sent;
    check("email_stats", [opened, "number"], [clicks, "number"], [sent, "number"]);
    for (const link of stats.data.links) {
      const url: string = link.url;
      check("email_stats_links", [url, "string"]);
    }
    for (const round of stats.data.rounds) {
      const number: number = round.round;
      const roundOpened: number = round.opened.unique;
      check("email_stats_rounds", [number, "number"], [roundOpened, "number"]);
    }

    const messages = await client.GET("/v1/email-campaigns/{campaign_id}/messages",
      { params: { path: { campaign_id: campaign.id } } });
    if (!messages.data) fail("GET /v1/email-campaigns/{campaign_id}/messages", messages.error);
    for (const message of messages.data.items) {
      const address: string = message.email;
      const error: string | null = message.error;
      check("email_messages", [address, "string"], [error, "string", true]);
    }
  }
}

async function notifications(): Promise<void> {
  const inbox = await client.GET("/v1/notifications", { params: { query: { limit: 10 } } });
  if (!inbox.data) fail("GET /v1/notifications", inbox.error);
  for (const notification of inbox.data.items) {
    const title: string | null = notification.title;
    const id: string = notification.id;
    check("notifications", [title, "string", true], [id, "string"]);
  }
}

async function content(): Promise<void> {
  const sites = await client.GET("/v1/sites");
  if (!sites.data) fail("GET /v1/sites", sites.error);
  for (const site of sites.data.items) {
    const slug: string = site.slug;
    const hasToken: boolean = site.has_token;
    const adminUrl: string = site.wp_admin_url;
    check("sites", [slug, "string"], [hasToken, "boolean"], [adminUrl, "string"]);
  }

  const articles = await client.GET("/v1/articles", { params: { query: { limit: 10 } } });
  if (!articles.data) fail("GET /v1/articles", articles.error);
  for (const article of articles.data.items) {
    const keyword: string | null = article.keyword;
    const status: string = article.status;
    const title: string | null = article.title;
    check("articles", [keyword, "string", true], [status, "string"], [title, "string", true]);
  }
}

async function main(): Promise<void> {
  await platform();
  await outreach();
  await email();
  await notifications();
  await content();
  console.log(JSON.stringify(checked));
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
});
