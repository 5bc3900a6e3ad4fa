#!/bin/sh
# Prints its environment, one VAR=value a line, sorted.
printf 'Content-Type: text/plain\r\n\r\n'
env | sort
