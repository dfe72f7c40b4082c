# Shared by the named test doubles in this folder (docker, kind, kubectl,
# helm). A double is a boundary stand-in for the real CLI: it appends its argv
# to $DOUBLE_STATE/calls.log, keeps a little state under $DOUBLE_STATE, and
# answers like the real tool. DOUBLE_FAIL="<tool> <arg prefix>" makes a
# matching call fail (exit 1) with an error on stderr; DOUBLE_SLOW="<tool>
# <arg prefix>" makes it take DOUBLE_SLOW_SECONDS (3) seconds (a cold
# node-image pull, say).
set -u
: "${DOUBLE_STATE:?DOUBLE_STATE must name the doubles state folder}"
mkdir -p "$DOUBLE_STATE"
double_start() {
    tool=$1
    shift
    printf '%s %s\n' "$tool" "$*" >>"$DOUBLE_STATE/calls.log"
    if [ -n "${DOUBLE_FAIL:-}" ]; then
        case "$tool $*" in
        "$DOUBLE_FAIL"*)
            echo "Error: injected failure by the $tool test double" >&2
            exit 1
            ;;
        esac
    fi
    if [ -n "${DOUBLE_SLOW:-}" ]; then
        case "$tool $*" in "$DOUBLE_SLOW"*) sleep "${DOUBLE_SLOW_SECONDS:-3}" ;; esac
    fi
}
