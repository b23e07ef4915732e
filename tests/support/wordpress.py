"""A throwaway real WordPress for tests: Debian's `wordpress` package on a private
MariaDB (socket only) served by `php -S` on 127.0.0.1 (recipe and gotchas:
/work/shared/notes/wordpress-local.md). No systemd, no wp-cli, no files under /etc.

Failure injection is real WordPress behaviour: a must-use plugin answers REST
requests with a chosen status while a counter file says so
(:meth:`LocalWordPress.fail_next`).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx

from funnel_dev.ports import free_port

WP_SRC = Path("/usr/share/wordpress")
ADMIN_USER, ADMIN_PASS, ADMIN_EMAIL = "admin", "S3cret-pass-123", "admin@example.com"

ROUTER_PHP = r"""<?php
$root = rtrim($_SERVER['DOCUMENT_ROOT'], '/');
$path = rawurldecode(parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH) ?? '/');
if ($path !== '/' && strpos($path, '..') === false && file_exists($root . $path)) {
    if (!is_dir($root . $path) || file_exists(rtrim($root . $path, '/') . '/index.php')) {
        return false;
    }
}
$_SERVER['SCRIPT_NAME'] = '/index.php';
$_SERVER['PHP_SELF'] = '/index.php';
$_SERVER['SCRIPT_FILENAME'] = $root . '/index.php';
chdir($root);
require $root . '/index.php';
"""

# Reads {"remaining": n, "status": s, "route": "/wp/v2/posts", "methods": ["POST"]} from the
# control file; while remaining > 0 a matching REST request is answered with that status.
FAULT_PLUGIN = r"""<?php
add_filter('rest_pre_dispatch', function ($result, $server, $request) {
    $file = FUNNEL_FAULT_FILE;
    if (!file_exists($file)) { return $result; }
    $fp = fopen($file, 'c+');
    if (!$fp) { return $result; }
    flock($fp, LOCK_EX);
    $spec = json_decode(stream_get_contents($fp), true);
    $hit = false;
    if (is_array($spec) && ($spec['remaining'] ?? 0) > 0
        && in_array($request->get_method(), $spec['methods'] ?? ['POST'], true)
        && strpos($request->get_route(), $spec['route'] ?? '/wp/v2/posts') === 0) {
        $spec['remaining'] -= 1;
        $spec['served'] = ($spec['served'] ?? 0) + 1;
        ftruncate($fp, 0); rewind($fp); fwrite($fp, json_encode($spec));
        $hit = true;
    }
    flock($fp, LOCK_UN); fclose($fp);
    if ($hit) {
        return new WP_Error('funnel_injected_fault', 'injected failure', array('status' => (int) $spec['status']));
    }
    return $result;
}, 10, 3);
"""


def available() -> str | None:
    """None when a WordPress can be started here, else the reason it cannot."""
    if not (WP_SRC / "wp-settings.php").exists():
        return "Debian's wordpress package is not installed (scripts/install-system-deps.sh wordpress)"
    for binary in ("php", "mariadbd", "mariadb-install-db", "mariadb", "mariadb-admin"):
        if shutil.which(binary) is None:
            return f"{binary} is not installed (scripts/install-system-deps.sh wordpress)"
    if os.geteuid() != 0:
        return "the WordPress fixture runs mariadbd as root (--user=root); run the tests as root"
    return None


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


class LocalWordPress:
    def __init__(self, tmp: Path, workers: int = 4):
        self.tmp = Path(tmp)
        self.workers = workers
        self.db_dir = self.tmp / "db"
        self.sock = self.db_dir / "mysqld.sock"
        self.docroot = self.tmp / "wp"
        self.fault_file = self.tmp / "fault.json"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []
        self.app_password: str | None = None

    @property
    def auth(self) -> tuple[str, str]:
        return ADMIN_USER, self.app_password

    @property
    def username(self) -> str:
        return ADMIN_USER

    # ------------------------------------------------------------ lifecycle
    def start(self) -> LocalWordPress:
        try:
            self._start_db()
            self._prepare_tree()
            self._start_php()
            self._install()
            self.app_password = self._create_app_password()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for proc in reversed(self.procs):  # php -S workers survive a SIGTERM to the master: kill the group
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _mysql(self, sql: str) -> None:
        subprocess.run(["mariadb", "--no-defaults", f"--socket={self.sock}", "-uroot", "-e", sql],
                       check=True, capture_output=True, text=True)

    def _start_db(self) -> None:
        self.db_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mariadb-install-db", "--no-defaults", "--user=root", f"--datadir={self.db_dir}/data",
                        "--auth-root-authentication-method=socket", "--skip-test-db"],
                       check=True, capture_output=True, text=True)
        self.procs.append(subprocess.Popen(
            ["mariadbd", "--no-defaults", "--user=root", f"--datadir={self.db_dir}/data", f"--socket={self.sock}",
             f"--pid-file={self.db_dir}/mysqld.pid", "--skip-networking", f"--log-error={self.db_dir}/error.log",
             "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=0", "--skip-name-resolve"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        _wait_for(lambda: subprocess.run(["mariadb-admin", "--no-defaults", f"--socket={self.sock}", "-uroot", "ping"],
                                         capture_output=True).returncode == 0, 30, "mariadbd")
        self._mysql("CREATE DATABASE wordpress CHARACTER SET utf8mb4;"
                    "CREATE USER 'wp'@'localhost' IDENTIFIED BY 'wppass';"
                    "GRANT ALL ON wordpress.* TO 'wp'@'localhost';")

    def _prepare_tree(self) -> None:
        # A private tree: Debian's wp-config.php insists on /etc/wordpress; hard links keep __DIR__ here.
        if subprocess.run(["cp", "-al", str(WP_SRC), str(self.docroot)], capture_output=True).returncode != 0:
            shutil.rmtree(self.docroot, ignore_errors=True)
            subprocess.run(["cp", "-a", str(WP_SRC), str(self.docroot)], check=True)
        (self.docroot / "wp-config.php").unlink()
        content = self.docroot / "wp-content"
        if content.is_symlink():  # never write into the system's /var/lib/wordpress
            content.unlink()
            subprocess.run(["cp", "-a", str(WP_SRC / "wp-content") + "/.", str(content)], check=False)
        (content / "uploads").mkdir(parents=True, exist_ok=True)
        (content / "mu-plugins").mkdir(parents=True, exist_ok=True)
        (content / "mu-plugins" / "funnel-fault.php").write_text(
            FAULT_PLUGIN.replace("FUNNEL_FAULT_FILE", repr(str(self.fault_file))))
        salts = "\n".join(f"define( '{k}', '{secrets.token_hex(32)}' );" for k in (
            "AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY",
            "AUTH_SALT", "SECURE_AUTH_SALT", "LOGGED_IN_SALT", "NONCE_SALT"))
        (self.docroot / "wp-config.php").write_text(f"""<?php
define( 'DB_NAME', 'wordpress' );
define( 'DB_USER', 'wp' );
define( 'DB_PASSWORD', 'wppass' );
define( 'DB_HOST', 'localhost:{self.sock}' );
define( 'DB_CHARSET', 'utf8mb4' );
define( 'DB_COLLATE', '' );
{salts}
$table_prefix = 'wp_';
define( 'WP_HOME', '{self.base}' );
define( 'WP_SITEURL', '{self.base}' );
define( 'WP_ENVIRONMENT_TYPE', 'local' );
define( 'WP_HTTP_BLOCK_EXTERNAL', true );
define( 'AUTOMATIC_UPDATER_DISABLED', true );
define( 'WP_AUTO_UPDATE_CORE', false );
define( 'DISABLE_WP_CRON', true );
define( 'FS_METHOD', 'direct' );
define( 'DISALLOW_FILE_MODS', true );
define( 'WP_DEBUG', true );
define( 'WP_DEBUG_DISPLAY', false );
define( 'WP_DEBUG_LOG', '{self.tmp}/wp-debug.log' );
if ( ! defined( 'ABSPATH' ) ) {{
    define( 'ABSPATH', __DIR__ . '/' );
}}
require_once ABSPATH . 'wp-settings.php';
""")
        (self.tmp / "router.php").write_text(ROUTER_PHP)

    def _start_php(self) -> None:
        env = dict(os.environ, PHP_CLI_SERVER_WORKERS=str(max(2, self.workers)))  # >= 2 (install loopback)
        self.procs.append(subprocess.Popen(
            ["php", "-S", f"127.0.0.1:{self.port}", "-t", str(self.docroot), str(self.tmp / "router.php")],
            env=env, stdout=open(self.tmp / "php-server.log", "wb"), stderr=subprocess.STDOUT,
            start_new_session=True))
        _wait_for(lambda: httpx.get(self.base + "/wp-login.php", timeout=2).status_code in (200, 302), 30, "php -S")

    def _install(self) -> None:
        response = httpx.post(self.base + "/wp-admin/install.php?step=2", timeout=120, data={
            "weblog_title": "Funnel test blog", "user_name": ADMIN_USER, "admin_password": ADMIN_PASS,
            "admin_password2": ADMIN_PASS, "pw_weak": "1", "admin_email": ADMIN_EMAIL, "blog_public": "0",
            "language": ""})
        response.raise_for_status()
        if "<h1>Success!</h1>" not in response.text:
            raise RuntimeError("WordPress install failed: " + response.text[:1000])
        probe = httpx.get(self.base + "/wp-json/", timeout=30)
        if not probe.headers.get("content-type", "").startswith("application/json"):
            raise RuntimeError("WordPress REST API is not served as JSON (pretty permalinks off?)")

    def _create_app_password(self) -> str:
        with httpx.Client(base_url=self.base, timeout=30) as client:
            client.cookies.set("wordpress_test_cookie", "WP Cookie check", domain="127.0.0.1")
            login = client.post("/wp-login.php", data={"log": ADMIN_USER, "pwd": ADMIN_PASS, "wp-submit": "Log In",
                                                       "testcookie": "1", "redirect_to": self.base + "/wp-admin/"})
            if login.status_code != 302:
                raise RuntimeError(f"WordPress login failed: {login.status_code}")
            nonce = client.get("/wp-admin/admin-ajax.php", params={"action": "rest-nonce"}).text.strip()
            created = client.post("/wp-json/wp/v2/users/me/application-passwords", headers={"X-WP-Nonce": nonce},
                                  json={"name": "funnel-tests"})
            if created.status_code != 201:
                raise RuntimeError(f"application password: {created.status_code} {created.text[:300]}")
            return created.json()["password"]

    # ------------------------------------------------------------ test helpers
    def fail_next(self, count: int, status: int = 503, route: str = "/wp/v2/posts",
                  methods: tuple[str, ...] = ("POST",)) -> None:
        """The next ``count`` matching REST requests answer ``status`` (a real WordPress error response)."""
        self.fault_file.write_text(json.dumps({"remaining": count, "status": status, "route": route,
                                               "methods": list(methods), "served": 0}))

    def faults_served(self) -> int:
        return json.loads(self.fault_file.read_text()).get("served", 0) if self.fault_file.exists() else 0

    def clear_faults(self) -> None:
        self.fault_file.unlink(missing_ok=True)

    def posts(self, **params) -> list[dict]:
        params = {"per_page": 100, "status": "any", "context": "edit", **params}
        response = httpx.get(self.base + "/wp-json/wp/v2/posts", params=params, auth=self.auth, timeout=30)
        response.raise_for_status()
        return response.json()

    def post(self, post_id: int) -> dict:
        response = httpx.get(f"{self.base}/wp-json/wp/v2/posts/{post_id}", params={"context": "edit"},
                             auth=self.auth, timeout=30)
        response.raise_for_status()
        return response.json()
