# A stand-in for terraform-aws-modules/rds/aws: the same argument and output
# names for what the test definition uses, no provider, so `terraform init`
# and `validate` run offline.

variable "identifier" {
  type = string
}

variable "engine" {
  type = string
}

variable "storage_encrypted" {
  type = bool
}

variable "instance_class" {
  type = string
}

variable "allocated_storage" {
  type    = number
  default = 20
}

variable "engine_version" {
  type    = string
  default = "8.0"
}

variable "multi_az" {
  type    = bool
  default = false
}

variable "vpc_security_group_ids" {
  type    = list(string)
  default = []
}

variable "tags" {
  type    = map(string)
  default = {}
}

variable "master_password" {
  type      = string
  default   = null
  sensitive = true
}

output "db_instance_address" {
  value = "${var.identifier}.example.internal"
}

output "db_instance_port" {
  value = 3306
}

output "db_instance_master_user_secret_arn" {
  value     = "arn:aws:secretsmanager:us-east-1:000000000000:secret:${var.identifier}"
  sensitive = true
}
