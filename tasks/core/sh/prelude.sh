# shellcheck shell=bash
# shellcheck disable=SC2034  # the globals below are read by the library
# The first lines of every program. The program is one { } block read whole before it runs (a dropped
# connection cannot cut it in half); it ignores SIGHUP and SIGPIPE so that, once started, it finishes and
# releases its lock even if the operator's laptop goes away; whatever way it ends, on_exit reports it.
set -u -o pipefail
umask 077
trap '' HUP PIPE
trap 'on_exit $?' EXIT
T0=$(date +%s)
HOLDING=0 AUDIT=0 SAID_ERROR=0 RESULT=refused
TMP_FILES=() TMP_WRITERS=() EXIT_HOOKS=() DONE_HOOKS=()
