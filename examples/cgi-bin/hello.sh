#!/bin/sh
# The smallest CGI program: headers, an empty line, the body.
printf 'Content-Type: text/plain\r\n\r\n'
printf 'Hello, World! (from /bin/sh, PID %s, via CGI/1.1)\n' "$$"
