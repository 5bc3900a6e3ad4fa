#!/bin/sh
# Never answers: a shell and its child sleeping forever (a process group to kill).
sleep 1000 &
echo $$ > "${QUERY_STRING:-/dev/null}"
wait
