#!/usr/bin/env bash
# Installs the system packages Funnel needs, by component, when they are missing.
#   postgresql  PostgreSQL 15+ server with contrib (citext): required by `make dev` and `make test`
#   chromium    Debian's Chromium, driven by Playwright (its own browser download is not needed)
#   wordpress   WordPress + MariaDB + PHP for the publishing tests (optional: those tests skip without it)
# As root with apt-get (Debian/Ubuntu) it installs; elsewhere it says what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

missing_packages=()
optional_missing=()

have_postgres() { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ls /usr/share/postgresql/*/extension/citext.control >/dev/null 2>&1; }
have_chromium() { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }
have_wordpress() { [ -f /usr/share/wordpress/wp-settings.php ] && command -v php >/dev/null 2>&1 && command -v mariadbd >/dev/null 2>&1; }

for component in "${@:-postgresql}"; do
  case "$component" in
    postgresql) have_postgres || missing_packages+=(postgresql postgresql-contrib) ;;
    chromium) have_chromium || optional_missing+=(chromium fonts-noto-cjk) ;;
    wordpress) have_wordpress || optional_missing+=(wordpress mariadb-server php-cli php-mysql php-gd) ;;
    *) echo "unknown component: $component" >&2; exit 2 ;;
  esac
done

all=("${missing_packages[@]}" "${optional_missing[@]}")
[ ${#all[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${all[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # Some packages (postgresql-contrib on Debian 12) are virtual or merged; install what exists.
  installable=()
  for package in "${all[@]}"; do
    if apt-cache show "$package" >/dev/null 2>&1; then installable+=("$package"); fi
  done
  apt-get install -y -qq --no-install-recommends "${installable[@]}" >/dev/null
  exit 0
fi

if [ ${#missing_packages[@]} -gt 0 ]; then
  echo "Funnel needs: ${missing_packages[*]}. On Debian/Ubuntu run: sudo apt-get install -y ${missing_packages[*]}" >&2
  echo "Elsewhere install PostgreSQL 15+ with its contrib extensions (citext)." >&2
  exit 1
fi
echo "optional packages missing (their tests will be skipped): ${optional_missing[*]}" >&2
