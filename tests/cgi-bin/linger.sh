#!/bin/sh
# Ends its answer, closes its stdout, then lingers 5 s before it exits (its
# response is over, its process is not). QUERY_STRING, optional: a file to
# write its PID to; the answer then ends only once the file "linger-go" exists
# in the same directory (at most 10 s), so that several scripts end together.
printf 'Content-Type: text/plain\n\n'
if [ -n "$QUERY_STRING" ]; then
    echo $$ > "$QUERY_STRING"
    go="$(dirname "$QUERY_STRING")/linger-go"
    n=0
    while [ ! -e "$go" ] && [ $n -lt 500 ]; do
        sleep 0.02
        n=$((n + 1))
    done
fi
echo bye
exec >&-
sleep 5
