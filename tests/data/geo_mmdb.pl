#!/usr/bin/perl
# geo_mmdb.pl: write a small country MMDB for the geo tests, with Debian's
# libmaxmind-db-writer-perl. Used by tests/e2e/geodata.py.
#
#   perl geo_mmdb.pl OUT STYLE NETWORK=CC...
#
# STYLE says where the code goes, as the databases in the wild put it:
#   maxmind     country.iso_code (GeoLite2/GeoIP2 Country, DB-IP)
#   registered  registered_country.iso_code only
#   ipinfo      country_code at the top level (IPinfo country / lite)
use strict;
use warnings;

use MaxMind::DB::Writer::Tree;

my ($out, $style, @nets) = @ARGV;
die "usage: $0 OUT maxmind|registered|ipinfo NETWORK=CC...\n"
    unless defined $style && $style =~ /^(maxmind|registered|ipinfo)$/;

my %types = (
	country            => 'map',
	registered_country => 'map',
	iso_code           => 'utf8_string',
	country_code       => 'utf8_string',
	country_name       => 'utf8_string',
);

my $tree = MaxMind::DB::Writer::Tree->new(
	ip_version              => 6,
	record_size             => 24,
	database_type           => 'sekisho-test-country',
	languages               => ['en'],
	description             => { en => 'sekisho geo test database' },
	# The test networks are documentation ranges (RFC 5737, RFC 3849),
	# which the writer drops by default.
	remove_reserved_networks => 0,
	map_key_type_callback   => sub { $types{ $_[0] } },
);

for my $item (@nets) {
	my ($net, $cc) = split /=/, $item, 2;
	die "bad item '$item' (expected NETWORK=CC)\n"
	    unless defined $cc && $cc =~ /^[A-Z]{2}$/;
	my $data =
	    # registered_country differs, so a reader that prefers it to
	    # country is caught.
	    $style eq 'maxmind'    ? { country => { iso_code => $cc },
	                               registered_country => { iso_code => 'KR' } } :
	    $style eq 'registered' ? { registered_country => { iso_code => $cc } } :
	                             { country_code => $cc, country_name => "test $cc" };
	$tree->insert_network($net, $data);
}

open my $fh, '>:raw', $out or die "$out: $!\n";
$tree->write_tree($fh);
close $fh or die "$out: $!\n";
