#!/usr/bin/env bash
# Installs the system packages Funnel needs, by component, when they are missing.
#   postgresql  PostgreSQL 15+ server with contrib (citext): required by `make dev` and `make test`
#   chromium    Debian's Chromium, driven by Playwright (its own browser download is not needed)
#   wordpress   WordPress + MariaDB + PHP for the publishing tests (optional: those tests skip without it)
#   walkthrough curl and jq, which the README's walkthroughs use (and the test that runs them as written)
#   node        Node.js and npm, for the TypeScript client check of the OpenAPI document (tests/contract)
# As root with apt-get (Debian/Ubuntu) it installs; elsewhere it says what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

missing_packages=()
optional_missing=()

have_postgres() { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ls /usr/share/postgresql/*/extension/citext.control >/dev/null 2>&1; }
have_chromium() { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }
have_walkthrough_tools() { command -v curl >/dev/null 2>&1 && command -v jq >/dev/null 2>&1; }
have_node() { command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; }
have_wordpress() { [ -f /usr/share/wordpress/wp-settings.php ] && command -v php >/dev/null 2>&1 && command -v mariadbd >/dev/null 2>&1; }

for component in "${@:-postgresql}"; do
  case "$component" in
    postgresql) have_postgres || missing_packages+=(postgresql postgresql-contrib) ;;
    chromium) have_chromium || optional_missing+=(chromium fonts-noto-cjk) ;;
    wordpress) have_wordpress || optional_missing+=(wordpress mariadb-server php-cli php-mysql php-gd) ;;
    walkthrough) have_walkthrough_tools || missing_packages+=(curl jq) ;;
    node) have_node || missing_packages+=(nodejs npm) ;;
    *) echo "unknown component: $component" >&2; exit 2 ;;
  esac
done

all=("${missing_packages[@]}" "${optional_missing[@]}")
[ ${#all[@]} -eq 0 ] && exit 0

installable() {  # some names (postgresql-contrib on Debian 12) are virtual or merged: keep what exists
  for package in "$@"; do
    if apt-cache show "$package" >/dev/null 2>&1; then printf '%s\n' "$package"; fi
  done
}

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${all[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Funnel starts its own PostgreSQL and MariaDB: keep the packages' services from starting during install
  # (they may not be able to on a machine without an init system).
  created_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && created_policy=1
  fi
  apt-get update -qq >/dev/null
  status=0
  if [ ${#missing_packages[@]} -gt 0 ]; then
    mapfile -t required < <(installable "${missing_packages[@]}")
    apt-get install -y -qq --no-install-recommends "${required[@]}" >/dev/null || status=$?
  fi
  if [ ${#optional_missing[@]} -gt 0 ]; then
    mapfile -t optional < <(installable "${optional_missing[@]}")
    apt-get install -y -qq --no-install-recommends "${optional[@]}" >/dev/null \
      || echo "optional packages could not be installed (their tests will be skipped): ${optional[*]}" >&2
  fi
  [ -n "$created_policy" ] && rm -f /usr/sbin/policy-rc.d
  exit $status
fi

if [ ${#missing_packages[@]} -gt 0 ]; then
  echo "Funnel needs: ${missing_packages[*]}. On Debian/Ubuntu run: sudo apt-get install -y ${missing_packages[*]}" >&2
  echo "Elsewhere install PostgreSQL 15+ with its contrib extensions (citext)." >&2
  exit 1
fi
echo "optional packages missing (their tests will be skipped): ${optional_missing[*]}" >&2
