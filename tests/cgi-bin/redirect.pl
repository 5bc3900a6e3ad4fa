#!/usr/bin/perl
# Redirects: ?local -> "Location: /path" only (local redirect),
# otherwise a client redirect to an absolute URL with a Status.
use strict;
use warnings;
my $q = $ENV{QUERY_STRING} // "";
if ($q eq "local") {
    print "Location: /hello\r\n\r\n";
} else {
    print "Status: 301 Moved\r\nLocation: http://example.com/x\r\nContent-Type: text/plain\r\n\r\nmoved\n";
}
