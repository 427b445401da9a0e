# Sourced by the bad-input CLI scripts. Needs $qtrain, $err (a temp file) and $fail.
# expect_error "what" "WORD WORD..." qtrain args...: exit 2 (not a crash), and one stderr
# line that holds every WORD (the file, the field).
expect_error() {
  local what=$1 words=$2; shift 2
  "$qtrain" "$@" >/dev/null 2>"$err"
  local rc=$? first msg missing=""
  first=${words%% *}
  msg=$(grep -F -- "$first" "$err" | head -n1)
  for w in $words; do grep -qF -- "$w" <<<"$msg" || missing+=" '$w'"; done
  if [[ $rc -ne 2 ]]; then
    echo "FAIL $what: exit $rc, want 2"; sed 's/^/  stderr: /' "$err" | tail -n5; fail=1
  elif [[ -n $missing ]]; then
    echo "FAIL $what: no stderr line holds$missing:"; sed 's/^/  stderr: /' "$err" | tail -n5; fail=1
  else
    echo "ok   $what: $msg"
  fi
}
