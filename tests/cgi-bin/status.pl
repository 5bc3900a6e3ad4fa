#!/usr/bin/perl
# A document with its own status, a custom field and a Content-Length.
print "Status: 404 Not Here\r\nContent-Type: text/plain\r\nX-Script: perl\r\nContent-Length: 8\r\n\r\nnot here";
