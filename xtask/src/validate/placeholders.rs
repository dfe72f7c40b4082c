//! A warning for every placeholder (`REPLACE-ME-...`) left in an encrypted
//! Secret that the user's age identities can open: `bootstrap` refuses to
//! deploy it (see [`crate::placeholders`]). Files nobody here can decrypt
//! cannot be looked into; bootstrap, which holds the cluster's key, still checks them.

use std::collections::HashSet;

use crate::placeholders::{MARKER, is_encrypted_secret, unset_in};

use super::{Check, Finding, Item, Severity};

pub fn check(items: &[Item], ids: Option<&sops::Identities>) -> Vec<Finding> {
    let Some(ids) = ids else {
        return Vec::new();
    };
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for it in items.iter().filter(|it| is_encrypted_secret(&it.object)) {
        if !seen.insert((it.file.clone(), it.line)) {
            continue;
        }
        let Ok(plain) = sops::decrypt_object(&it.object, ids) else {
            continue;
        };
        for u in unset_in(&plain) {
            let mut f = Finding::error(
                Check::Secrets,
                &it.file,
                it.line,
                format!(
                    "`{}` still holds a placeholder ({MARKER}-...): `cargo xtask bootstrap` refuses this cluster until it is set (`cargo xtask secrets edit {}`)",
                    u.key, it.file
                ),
            )
            .with_object(format!("Secret {}", u.secret));
            f.severity = Severity::Warning;
            out.push(f);
        }
    }
    out
}
