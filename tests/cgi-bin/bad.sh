#!/bin/sh
# Bad CGI output: no header block, just text.
echo "this is not a header"
echo
echo "body"
