# Every deployment says who pays for it and who owns it: the labels
# `cost-center` and `owner` are required, and an empty value does not count.
package nestor.deployment.required_labels

import rego.v1

required := {"cost-center", "owner"}

deny contains msg if {
	some label in required
	not has_label(label)
	msg := sprintf("%s/%s needs the label %s", [input.team, input.name, label])
}

has_label(label) if {
	input.labels[label] != ""
}
