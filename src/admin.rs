//! Administration: creating an organization with its first workspace and keys (`handoff admin init`).

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::auth::crypto::MasterKey;
use crate::auth::keys::generate_machine_key;
use crate::auth::machine_secret_context;
use crate::domain::{MachineKey, Organization, OrganizationId, Workspace, WorkspaceId};
use crate::storage::{Result, Store};

/// What `admin init` creates. The secret key exists in clear only here, to be shown once.
pub struct TenantCredentials {
    pub organization_id: OrganizationId,
    pub workspace_id: WorkspaceId,
    pub access_key: String,
    pub secret_key: SecretString,
    pub publishable_key: String,
}

impl TenantCredentials {
    /// The `--json` form: one object with every credential (the secret included, by request).
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "organization_id": self.organization_id,
            "workspace_id": self.workspace_id,
            "access_key": self.access_key,
            "secret_key": self.secret_key.expose_secret(),
            "publishable_key": self.publishable_key,
        })
    }

    /// The human form, printed once on first start.
    pub fn to_text(&self) -> String {
        format!(
            "Created organization and workspace. Save these now: the secret key is not shown again.\n\
             \n  organization_id  {}\n  workspace_id     {}\n  access_key       {}\n  secret_key       {}\n  publishable_key  {}\n",
            self.organization_id,
            self.workspace_id,
            self.access_key,
            self.secret_key.expose_secret(),
            self.publishable_key
        )
    }
}

/// Creates an organization, one workspace, a machine key and a publishable key, in one transaction.
pub async fn init_tenant(
    store: &dyn Store,
    master: &MasterKey,
    organization_name: &str,
    workspace_name: &str,
) -> Result<TenantCredentials> {
    let now = crate::domain::now();
    let org = Organization {
        id: OrganizationId::new_v4(),
        name: organization_name.to_owned(),
        created_at: now,
    };
    let workspace = Workspace {
        id: WorkspaceId::new_v7(),
        organization_id: org.id,
        name: workspace_name.to_owned(),
        description: None,
        created_at: now,
        updated_at: now,
    };
    let generated = generate_machine_key();
    let machine_key = MachineKey {
        access_key: generated.access_key.clone(),
        organization_id: org.id,
        secret_ciphertext: master.seal(
            &machine_secret_context(&generated.access_key),
            generated.secret_key.expose_secret().as_bytes(),
        ),
        created_at: now,
    };
    let publishable = crate::http::workspaces::new_publishable_key(org.id, &workspace);
    store
        .create_tenant(&org, &workspace, &machine_key, &publishable)
        .await?;
    tracing::info!(organization.id = %org.id, workspace.id = %workspace.id, "organization created");
    Ok(TenantCredentials {
        organization_id: org.id,
        workspace_id: workspace.id,
        access_key: generated.access_key,
        secret_key: generated.secret_key,
        publishable_key: publishable.public_key,
    })
}
