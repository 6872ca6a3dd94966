#!/bin/sh
# The clevis pin "tdcrypt" with Debian's clevis (docs/ARCHITECTURE.md, "The clevis pin"):
# a real tdcrypt-kbs on 127.0.0.1 with the simulator; `clevis luks bind` on a LUKS2 image
# file, then `clevis luks pass` gives back a passphrase that opens the bound keyslot, and
# `clevis encrypt tdcrypt | clevis decrypt` returns the plaintext byte for byte. Each way
# it must fail fails: the broker's policy refuses the quote (bind and unlock), a wrong
# broker pin, an altered JWE header or ciphertext, a config with a member the pin does
# not know. The JWE header names the broker, its pin and the secret ID, never a key.
# usage: clevis.sh TDCRYPT_KBS TDCRYPT PIN_DIR TPM_LOG_WRITER
set -eu
KBS=$1
TDCRYPT=$2
PIN_DIR=$3
TPMLOG=$4
for t in clevis jose cryptsetup; do
	command -v $t >/dev/null || { echo "FAIL: no $t (Debian: clevis clevis-luks jose cryptsetup-bin)"; exit 1; }
done
D=$(mktemp -d /tmp/tdc-clevis-XXXXXX)
PID=
cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null
	rm -rf "$D"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- broker log"; tail -20 "$D/log" 2>/dev/null; exit 1; }
wait_line() { for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
pin_of() { openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform der | sha256sum | cut -d' ' -f1; }
# clevis finds its pins on PATH: the ones just built first
PATH="$PIN_DIR:$PATH"
export PATH
[ "$(command -v clevis-encrypt-tdcrypt)" = "$PIN_DIR/clevis-encrypt-tdcrypt" ] || fail "not the built pin"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=broker.test \
	-keyout "$D/broker.key" -out "$D/broker.crt" -days 1 2>/dev/null
PIN=$(pin_of "$D/broker.crt")
"$TDCRYPT" sim init "$D/sim" >/dev/null 2>&1 || fail "sim init"
"$TPMLOG" "$D/tpm.log" || fail "tpm log"
"$KBS" init --master-key "$D/master.key" --db "$D/kbs.db" 2>/dev/null
user=
[ "$(id -u)" = 0 ] && user='"user": "nobody",'
cat > "$D/kbs.json" <<J
{"listen": "127.0.0.1:0", $user "log": "json",
 "cert": "$D/broker.crt", "key": "$D/broker.key",
 "db": "$D/kbs.db", "master_key": "$D/master.key", "collateral_dir": "$D/sim/collateral",
 "admin_socket": "$D/run/kbs.sock", "allow_simulator_root": "$D/sim/sim-root.pem",
 "workers": 2}
J
"$KBS" --config "$D/kbs.json" 2>"$D/log" &
PID=$!
wait_line "$D/log" '"event":"listening"' || fail "the broker did not start"
PORT=$(sed -n 's/.*"event":"listening".*"port":\([0-9]*\).*/\1/p' "$D/log")
export TDCRYPT_KBS_SOCKET="$D/run/kbs.sock"
wait_line "$D/log" '"event":"sandboxed"' || fail "not sandboxed"

# the broker's secret: the pin's wrapping key (known here, to look for it in the header)
WRAP=clevis-wrapping-secret-0123456789abcdef
printf '%s' "$WRAP" > "$D/wrap"
"$TDCRYPT" secret add clevis-root --key-file "$D/wrap" >/dev/null 2>&1 || fail "secret add"
MRTD=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["mrtd"])' "$D/sim/td.json")
printf '{"allow_simulator":true,"mrtd":["%s"]}' "$MRTD" > "$D/allow.json"
printf '{"allow_simulator":true,"mrtd":["%096d"]}' 1 > "$D/deny.json"
"$TDCRYPT" policy set clevis-root "$D/allow.json" >/dev/null || fail "policy set"

# how this machine gets a quote: the simulator (the machine's file, not the disk's)
cat > "$D/machine.json" <<J
{"provider": "sim", "sim_dir": "$D/sim", "tpm_log": "$D/tpm.log",
 "timeouts": {"total_s": 8, "attempt_s": 4, "connect_s": 2}}
J
export TDCRYPT_CLEVIS_CONFIG="$D/machine.json"
CFG="{\"broker\": \"127.0.0.1:$PORT\", \"pin\": \"$PIN\", \"secret\": \"clevis-root\"}"

# ---- 1. encrypt | decrypt: the same bytes
head -c 64 /dev/urandom > "$D/pt"
clevis encrypt tdcrypt "$CFG" < "$D/pt" > "$D/jwe" 2>"$D/err" || fail "encrypt: $(cat "$D/err")"
clevis decrypt < "$D/jwe" > "$D/pt2" 2>"$D/err" || fail "decrypt: $(cat "$D/err")"
cmp -s "$D/pt" "$D/pt2" || fail "decrypt: not the plaintext"
# the header: pin, broker, pin hash, secret ID, salt; never the key or the plaintext
HDR=$(cut -d. -f1 "$D/jwe" | jose b64 dec -i-)
echo "$HDR" | python3 -c '
import json, sys
h = json.load(sys.stdin)
assert h["alg"] == "dir" and h["enc"] == "A256GCM", h
t = h["clevis"]["tdcrypt"]
assert h["clevis"]["pin"] == "tdcrypt" and set(t) == {"broker", "pin", "secret", "salt"}, h
assert t["secret"] == "clevis-root" and len(t["pin"]) == 1, t
' || fail "header: $HDR"
echo "$HDR" | grep -q "$PIN" || fail "header without the broker pin"
grep -q "$WRAP" "$D/jwe" && fail "the wrapping secret in the JWE"
jose jwe fmt -i "$D/jwe" -o- >/dev/null || fail "jose does not read the JWE"

# ---- 2. clevis luks bind on a LUKS2 image file, clevis luks pass opens the bound slot
truncate -s 24M "$D/disk.img"
printf 'initial-passphrase' > "$D/pass0"
cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
	--key-file "$D/pass0" "$D/disk.img" || fail "luksFormat"
clevis luks bind -y -k "$D/pass0" -d "$D/disk.img" tdcrypt "$CFG" 2>"$D/err" ||
	fail "clevis luks bind: $(cat "$D/err")"
# (clevis luks list knows the configs of its own pins only: "N: unknown pin 'tdcrypt'")
SLOT=$(clevis luks list -d "$D/disk.img" | sed -n "s/^\([0-9]*\): .*tdcrypt.*/\1/p")
[ -n "$SLOT" ] || fail "no tdcrypt binding: $(clevis luks list -d "$D/disk.img")"
clevis luks pass -d "$D/disk.img" -s "$SLOT" > "$D/pass1" 2>"$D/err" || fail "luks pass: $(cat "$D/err")"
[ -s "$D/pass1" ] || fail "luks pass: empty"
cmp -s "$D/pass0" "$D/pass1" && fail "luks pass: the initial passphrase, not the bound one"
cryptsetup open --test-passphrase -S "$SLOT" --key-file "$D/pass1" "$D/disk.img" ||
	fail "the passphrase from the pin does not open keyslot $SLOT"
cryptsetup luksDump --dump-json-metadata "$D/disk.img" > "$D/meta.json" 2>/dev/null ||
	cryptsetup luksDump "$D/disk.img" > "$D/meta.json"
grep -q "$WRAP" "$D/meta.json" && fail "the wrapping secret in the LUKS header"
grep -qa "$WRAP" "$D/disk.img" && fail "the wrapping secret on the disk"

# ---- 3. the broker refuses (its policy rejects this quote): no unlock, no bind
"$TDCRYPT" policy set clevis-root "$D/deny.json" >/dev/null || fail "policy set"
clevis luks pass -d "$D/disk.img" -s "$SLOT" > "$D/pass2" 2>"$D/err" && fail "luks pass despite the denial"
[ -s "$D/pass2" ] && fail "luks pass printed something despite the denial"
grep -q 'denied' "$D/err" || fail "the denial not said: $(cat "$D/err")"
clevis decrypt < "$D/jwe" > "$D/pt3" 2>/dev/null && fail "decrypt despite the denial"
[ -s "$D/pt3" ] && fail "decrypt printed something despite the denial"
printf 'x' | clevis encrypt tdcrypt "$CFG" > "$D/jwe2" 2>/dev/null && fail "encrypt despite the denial"
N0=$(clevis luks list -d "$D/disk.img" | grep -c tdcrypt)
clevis luks bind -y -k "$D/pass0" -d "$D/disk.img" tdcrypt "$CFG" 2>/dev/null && fail "bind despite the denial"
[ "$(clevis luks list -d "$D/disk.img" | grep -c tdcrypt)" = "$N0" ] || fail "a binding added despite the denial"
grep -q '"decision":"denied".*"secret_id":"clevis-root"\|"secret_id":"clevis-root".*"decision":"denied"' "$D/log" ||
	fail "no denial in the broker log"
"$TDCRYPT" policy set clevis-root "$D/allow.json" >/dev/null || fail "policy set"
clevis decrypt < "$D/jwe" > "$D/pt4" 2>"$D/err" || fail "decrypt after the policy came back: $(cat "$D/err")"
cmp -s "$D/pt" "$D/pt4" || fail "decrypt: not the plaintext"

# ---- 4. the broker's identity: a wrong pin, nothing sent
BAD="{\"broker\": \"127.0.0.1:$PORT\", \"pin\": \"$(printf '%064d' 0)\", \"secret\": \"clevis-root\"}"
printf 'x' | clevis encrypt tdcrypt "$BAD" > /dev/null 2>"$D/err" && fail "encrypt with a wrong pin"
grep -q 'bad-broker' "$D/err" || fail "wrong pin: $(cat "$D/err")"

# ---- 5. an altered JWE: header (another secret ID) or ciphertext
"$TDCRYPT" secret add clevis-other --key-file "$D/pass0" >/dev/null 2>&1 || fail "secret add"
"$TDCRYPT" policy set clevis-other "$D/allow.json" >/dev/null || fail "policy set"
H2=$(echo "$HDR" | sed 's/"clevis-root"/"clevis-other"/' | tr -d '\n' | jose b64 enc -I-)
REST=$(cut -d. -f2- "$D/jwe")
printf '%s.%s' "$H2" "$REST" | clevis decrypt > "$D/pt5" 2>"$D/err" && fail "decrypt of an altered header"
grep -q 'does not open' "$D/err" || fail "altered header: $(cat "$D/err")"
python3 - "$D/jwe" > "$D/jwe3" <<'PY'
import sys
p = open(sys.argv[1]).read().strip().split(".")
c = p[3]
p[3] = ("A" if c[0] != "A" else "B") + c[1:]
print(".".join(p), end="")
PY
clevis decrypt < "$D/jwe3" > /dev/null 2>"$D/err" && fail "decrypt of an altered ciphertext"
grep -q 'does not open' "$D/err" || fail "altered ciphertext: $(cat "$D/err")"

# ---- 6. the pin's config is strict: an unknown member (a key, say) is refused
printf 'x' | clevis encrypt tdcrypt "{\"broker\": \"127.0.0.1:$PORT\", \"pin\": \"$PIN\", \"secret\": \"clevis-root\", \"key\": \"k\"}" \
	> /dev/null 2>"$D/err" && fail "a config with an unknown member"
grep -q 'unknown member' "$D/err" || fail "unknown member: $(cat "$D/err")"
clevis encrypt tdcrypt --summary >/dev/null 2>&1 || true
clevis-encrypt-tdcrypt --summary | grep -q tdcrypt || fail "--summary"
grep -q "$WRAP" "$D/log" && fail "the secret in the broker log"
echo "ok: bind, pass, encrypt/decrypt; denial, wrong pin, altered JWE, strict config"
