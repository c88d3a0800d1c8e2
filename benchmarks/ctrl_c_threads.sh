#!/usr/bin/env bash
# Ctrl-C in the middle of the default study in threads (hydra/launcher=threads tune.pack=true),
# 1.5 s into its second stage (DELAY), then the same command again: every row should end ok
# once, and no point finished before the interrupt should train again.
#
#     bash benchmarks/ctrl_c_threads.sh OUT [override ...]
OUT=$1; shift
S="python3 -m scaling.cli sweep mlp_width hydra/launcher=threads tune.pack=true --bootstrap 0 --out $OUT $*"
$S > $OUT.1.log 2>&1 &
P=$!
for i in $(seq 1 300); do
  grep -q "15 done" $OUT.1.log 2>/dev/null && break
  sleep 0.5
done
sleep ${DELAY:-1.5}; n=$(grep -c " ok " $OUT.1.log); kill -INT $P; T0=$(date +%s.%N); wait $P; echo "first: rc=$? ok lines=$n, exit $(awk -v a=$T0 -v b=$(date +%s.%N) "BEGIN{printf \"%.2f\", b-a}") s after SIGINT"
python3 - "$OUT" <<'PY' > $OUT.before.txt
import json, sys, pathlib
for p in sorted(pathlib.Path(sys.argv[1]).glob("points/*/result.json")):
    r = json.loads(p.read_text()); print(p.parent.name, r["status"], r.get("finished_at"))
PY
cut -d' ' -f2 $OUT.before.txt | sort | uniq -c
$S > $OUT.2.log 2>&1; echo "second: rc=$?"
python3 - "$OUT" <<'PY'
import json, sys, pathlib
before = {l.split()[0]: l.split()[1:] for l in open(sys.argv[1] + ".before.txt")}
rows = {p.parent.name: json.loads(p.read_text()) for p in pathlib.Path(sys.argv[1]).glob("points/*/result.json")}
ok = [k for k, r in rows.items() if r["status"] == "ok"]
kept = [k for k, (st, fin) in before.items() if st == "ok" and rows[k].get("finished_at") == fin]
print(f"after: {len(rows)} rows, {len(ok)} ok; ok before: {sum(v[0] == 'ok' for v in before.values())}, unchanged: {len(kept)}")
PY
grep -m1 "points, .* done" $OUT.2.log
