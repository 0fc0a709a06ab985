# Sourced by the live benchmarks (rss_breakdown.sh, bench_live.sh,
# bench_idle.sh): `reference_profile DIR` writes the reference ensemble of
# issue 18 (10 members of 3 symbols x 10 features x lookback 24, hidden
# [512, 256], seed 11) to DIR/ens and a profile for it to DIR/configs/ref.toml
# (the shipped full profile with 120 h of history and 1 inference thread),
# beside a copy of configs/host.toml. Run from the repository's root.
reference_profile() {
  local dir=$1
  python3 scripts/gen_ensemble.py --out "$dir/ens" --members 10 --lookback 24 --hidden 512,256 \
    --seed 11 >/dev/null
  mkdir -p "$dir/configs"
  cp configs/host.toml "$dir/configs/host.toml"
  sed -e "s|^dir = .*|dir = \"$dir/ens\"|" -e "s|^history_hours = .*|history_hours = 120|" \
    -e "s|^threads = .*|threads = 1|" configs/full.toml >"$dir/configs/ref.toml"
}
