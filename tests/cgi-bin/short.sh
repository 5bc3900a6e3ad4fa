#!/bin/sh
# Promises 100 bytes, sends 4: the client must not take it for a whole body.
printf 'Content-Type: text/plain\r\nContent-Length: 100\r\n\r\nabc\n'
