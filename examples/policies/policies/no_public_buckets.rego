# No bucket is readable by the whole internet: a storage resource may not
# ask for a public ACL or turn off the provider's public access blocks,
# neither in its inputs nor in the static inputs its definition passes to
# Terraform.
package nestor.deployment.no_public_buckets

import rego.v1

public_acls := {"public-read", "public-read-write", "authenticated-read"}

blocks := {"block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"}

deny contains msg if {
	some r in storage
	r.inputs.acl in public_acls
	msg := sprintf("%s: the ACL %s makes the bucket public", [r.name, r.inputs.acl])
}

deny contains msg if {
	some r in storage
	r.inputs.public == true
	msg := sprintf("%s: public buckets are not allowed", [r.name])
}

deny contains msg if {
	some r in storage
	some block in blocks
	r.definition.spec.engine_configs.terraform.static_inputs[block] == false
	msg := sprintf("%s: %s pins %s to false", [r.name, r.catalog_ref, block])
}

storage contains r if {
	some r in input.resources
	r.definition.metadata.category == "storage"
}
