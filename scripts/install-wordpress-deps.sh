#!/usr/bin/env bash
# Installs what the real-WordPress tests (pytest marker `wordpress`) need:
# Debian's wordpress package, MariaDB server, PHP CLI with mysql and gd.
# As root with apt-get it installs what is missing; elsewhere it says what to
# install and exits 0 (those tests then skip with the reason).
set -euo pipefail

have_wordpress() {
  [ -f /usr/share/wordpress/wp-settings.php ] && command -v php >/dev/null 2>&1 \
    && command -v mariadbd >/dev/null 2>&1 && php -m 2>/dev/null | grep -qi '^mysqli$' \
    && php -m 2>/dev/null | grep -qi '^gd$'
}

have_wordpress && exit 0
packages=(wordpress mariadb-server php-cli php-mysql php-gd)

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing: ${packages[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Without systemd, maintainer scripts could try to start apache2/mariadb; the tests start their own.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  exit 0
fi
echo "WordPress tests will be skipped; to run them install: ${packages[*]} (Debian/Ubuntu, as root)" >&2
