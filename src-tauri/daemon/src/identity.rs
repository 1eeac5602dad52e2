//! Who is calling: the uid of the process at the other end of the socket, as the kernel says
//! (SO_PEERCRED), never a field of the request. Groups are read at each request, so a group an
//! admin adds or removes counts at once.

use std::ffi::CString;

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::Response;
use gpudeck_core::policy::{self, Caller, Role};
use nix::unistd::{Gid, Group, Uid, User};
use tokio::net::UnixListener;

/// The peer's credentials, taken when the connection is accepted.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub uid: Option<u32>,
}

impl Connected<axum::serve::IncomingStream<'_, UnixListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, UnixListener>) -> Self {
        Peer {
            uid: stream.io().peer_cred().ok().map(|c| c.uid()),
        }
    }
}

/// The caller a uid is: name, home, every group, role.
pub fn caller_of(uid: u32) -> Caller {
    let user = User::from_uid(Uid::from_raw(uid)).ok().flatten();
    let (name, gid, home) = match &user {
        Some(u) => (u.name.clone(), u.gid.as_raw(), u.dir.display().to_string()),
        None => (format!("uid{uid}"), u32::MAX, String::from("/nonexistent")),
    };
    let groups: Vec<u32> = CString::new(name.clone())
        .ok()
        .and_then(|c| nix::unistd::getgrouplist(&c, Gid::from_raw(gid)).ok())
        .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
        .unwrap_or_default();
    let gid_of = |n: &str| Group::from_name(n).ok().flatten().map(|g| g.gid.as_raw());
    let mut names = Vec::new();
    for (n, g) in [
        (policy::GROUP_ADMINS, gid_of(policy::GROUP_ADMINS)),
        (policy::GROUP_MEMBERS, gid_of(policy::GROUP_MEMBERS)),
    ] {
        if g.is_some_and(|g| groups.contains(&g)) {
            names.push(n.to_string());
        }
    }
    let role = if user.is_none() && uid != 0 {
        Role::None
    } else {
        policy::role_of(uid, &names)
    };
    Caller {
        uid,
        gid,
        user: name,
        groups,
        home,
        role,
    }
}

/// The caller a user name is now (`None`: no such user).
pub fn caller_named(name: &str) -> Option<Caller> {
    let u = User::from_name(name).ok().flatten()?;
    Some(caller_of(u.uid.as_raw()))
}

/// Puts the caller into the request. Over the socket it is always the peer's (whatever the
/// request carries); the in-process transport (`--local`) puts its own in beforehand.
pub async fn identify(mut req: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<Peer>>().copied() {
        let caller = match peer.uid {
            Some(uid) => caller_of(uid),
            None => Caller {
                uid: u32::MAX,
                gid: u32::MAX,
                user: "unknown".into(),
                groups: vec![],
                home: "/nonexistent".into(),
                role: Role::None,
            },
        };
        req.extensions_mut().insert(caller);
    }
    next.run(req).await
}
