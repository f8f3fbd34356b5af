package nestor.deployment.required_labels_test

import rego.v1

import data.nestor.deployment.required_labels

test_both_labels_pass if {
	count(required_labels.deny) == 0 with input as {
		"team": "alpha", "name": "shop",
		"labels": {"cost-center": "cc-42", "owner": "alice"},
	}
}

test_a_missing_label_is_named if {
	required_labels.deny == {"alpha/shop needs the label owner"} with input as {
		"team": "alpha", "name": "shop",
		"labels": {"cost-center": "cc-42"},
	}
}

test_an_empty_label_does_not_count if {
	count(required_labels.deny) == 2 with input as {
		"team": "alpha", "name": "shop",
		"labels": {"cost-center": "", "owner": ""},
	}
}
