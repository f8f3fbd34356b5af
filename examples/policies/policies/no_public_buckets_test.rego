package nestor.deployment.no_public_buckets_test

import rego.v1

import data.nestor.deployment.no_public_buckets

bucket(inputs, static) := {
	"name": "assets",
	"catalog_ref": "aws-s3-bucket:1.4.0",
	"inputs": inputs,
	"definition": {
		"metadata": {"category": "storage"},
		"spec": {"engine_configs": {"terraform": {"static_inputs": static}}},
	},
}

test_a_private_bucket_passes if {
	count(no_public_buckets.deny) == 0 with input as {"resources": [bucket({"bucket_name": "assets"}, {"block_public_acls": true})]}
}

test_a_public_acl_is_refused if {
	no_public_buckets.deny == {"assets: the ACL public-read makes the bucket public"} with input as {"resources": [bucket({"acl": "public-read"}, {})]}
}

test_a_public_flag_is_refused if {
	count(no_public_buckets.deny) == 1 with input as {"resources": [bucket({"public": true}, {})]}
}

test_a_definition_lifting_the_block_is_refused if {
	no_public_buckets.deny == {"assets: aws-s3-bucket:1.4.0 pins block_public_acls to false"} with input as {"resources": [bucket({}, {"block_public_acls": false})]}
}

test_other_categories_are_ignored if {
	count(no_public_buckets.deny) == 0 with input as {"resources": [{"name": "db", "inputs": {"public": true}, "definition": {"metadata": {"category": "database"}}}]}
}
