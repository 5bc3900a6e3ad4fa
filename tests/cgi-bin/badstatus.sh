#!/bin/sh
# A Status field that is not "NNN reason".
printf 'Status: abc\nContent-Type: text/plain\n\nx\n'
