#!/usr/bin/env bash
# Local stand-ins for the services the example function `functions/mixed-runtimes.json`
# calls, so it runs on one machine with no cloud account and no registry:
#   - a private Docker engine (Debian's dockerd) with a `busybox:local` image imported
#     from the static busybox, on its own socket;
#   - moto's Lambda Invoke endpoint on 127.0.0.1:5050 (answers with the payload it gets);
#   - an http receiver on 127.0.0.1:8299 that checks X-Weir-Signature as a real one should.
# It prints the environment to start `weir dev` with, then runs until Ctrl-C and stops
# everything it started. Needs root for dockerd (as Docker itself does).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${WEIR_STANDINS_DIR:-/tmp/weir-standins}"
key="${WEIR_SIGNING_KEY:-weir-dev-signing-key}"
"$root/scripts/need.sh" "the stand-ins run a private Docker engine with a busybox image" docker.io busybox-static curl
moto="$("$root/scripts/moto.sh" | tail -n 1)"
mkdir -p "$dir"
pids=()
stop() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    while kill -0 "$p" 2>/dev/null; do sleep 0.1; done
  done
  { grep -o " $dir/[^ ]*" /proc/self/mounts || true; } | sort -r | while read -r m; do umount -l "$m" || true; done
  rm -rf "$dir"
}
trap stop EXIT
trap 'exit 130' INT TERM

sock="$dir/docker.sock"
echo '{}' > "$dir/daemon.json"
/usr/sbin/dockerd --config-file "$dir/daemon.json" --host "unix://$sock" \
  --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/docker.pid" \
  --bridge=none --iptables=false --ip6tables=false --log-level=warn >"$dir/dockerd.log" 2>&1 </dev/null &
pids+=($!)
for _ in $(seq 300); do curl -sf --unix-socket "$sock" http://localhost/_ping >/dev/null && break; sleep 0.1; done
curl -sf --unix-socket "$sock" http://localhost/_ping >/dev/null || { cat "$dir/dockerd.log"; exit 1; }

# busybox:local from the static busybox: no registry needed.
rootfs="$dir/rootfs"
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp"
cp /bin/busybox "$rootfs/bin/busybox"
for a in $("$rootfs/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$rootfs/etc/passwd"
tar -C "$rootfs" -cf "$dir/rootfs.tar" .
curl -sf --unix-socket "$sock" -X POST -H 'Content-Type: application/x-tar' --data-binary "@$dir/rootfs.tar" \
  'http://localhost/images/create?fromSrc=-&repo=busybox&tag=local&changes=ENV%20PATH%3D%2Fbin&changes=CMD%20%5B%22sh%22%5D' >/dev/null

(cd "$dir" && exec "$moto" -H 127.0.0.1 -p 5050) >"$dir/moto.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do curl -sf http://127.0.0.1:5050/moto-api/config >/dev/null && break; sleep 0.1; done
curl -sf -X POST -H 'Content-Type: application/json' -d '{"lambda":{"use_docker":false}}' \
  http://127.0.0.1:5050/moto-api/config >/dev/null

WEIR_SIGNING_KEY="$key" python3 - <<'PY' &
import hashlib, hmac, http.server, json, os, time
KEY = os.environ["WEIR_SIGNING_KEY"].encode()
class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        sig = self.headers.get("x-weir-signature", "")
        parts = dict(p.split("=", 1) for p in sig.split(",") if "=" in p)
        t = parts.get("t", "0")
        want = hmac.new(KEY, t.encode() + b"." + body, hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(want, parts.get("v1", "")) and abs(time.time() - int(t)) < 300
        if not ok:
            self.send_response(401); self.end_headers(); return
        seen = json.loads(body)
        hello = seen.get("steps", {}).get("hello", {}).get("body", {})
        out = json.dumps({"status": 200, "body": {"signed": True, "saw": hello.get("message")}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", 8299), Receiver).serve_forever()
PY
pids+=($!)

cat <<EOF
stand-ins ready: docker unix://$sock (busybox:local), lambda http://127.0.0.1:5050 (moto), http receiver http://127.0.0.1:8299
in another shell, from $root:
  DOCKER_HOST=unix://$sock AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing ./scripts/dev.sh
then:
  curl -s -X POST localhost:8288/e/dev -d '{"name":"demo/mixed","data":{"name":"Ada"}}'
Ctrl-C here stops the stand-ins.
EOF
wait
