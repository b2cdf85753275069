# Sourced by the compare scripts right after they cd to the repository root: names a run by when it started and
# by the code it measured. `-dirty` in the revision marks uncommitted changes, so a figure is never credited to a
# commit that did not produce it.
RUN_STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
RUN_REV=$(git describe --always --dirty 2>/dev/null || echo '?')

# run_info: one line for a report's header: start and end time, machine, kernel, revision.
run_info() {
    echo "$RUN_STARTED to $(date -u '+%H:%M UTC'), $(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), Linux $(uname -r), git $RUN_REV"
}
