//! The Redis key layout.
//!
//! Every key that belongs to one service starts with `holdline:{SERVICE}:`: the braces are a Redis
//! Cluster hash tag, so a service's request stream, dead-letter stream and results live in one slot
//! and multi-key commands (`XREADGROUP` over several lanes, `MULTI`) work on a cluster. Each gateway
//! replica's reply stream carries its own tag, `{gw:ID}`.
//!
//! Service names and gateway ids are [names](is_valid_name): 1 to 64 of `[A-Za-z0-9_.-]`, so they
//! can never contain a brace or a colon that would break the layout.

/// The stream a service's instances consume requests from (consumer group
/// [`CONSUMER_GROUP`](crate::CONSUMER_GROUP)).
///
/// Tenant lanes, when they come, will be `holdline:{SERVICE}:requests:TENANT` in the same slot.
pub fn request_stream(service: &str) -> String {
    format!("holdline:{{{service}}}:requests")
}

/// The stream that receives requests which failed delivery too many times.
pub fn dead_letter_stream(service: &str) -> String {
    format!("holdline:{{{service}}}:dead")
}

/// The string key holding the encoded [`QueuedResponse`](crate::QueuedResponse) of one request,
/// written by the worker with a TTL so that any gateway replica can serve a `202` fetch.
pub fn result_key(service: &str, request_id: &str) -> String {
    format!("holdline:{{{service}}}:result:{request_id}")
}

/// The ticket of a request whose client was answered `202 Accepted`: a marker the gateway sets
/// when it enqueues, expiring with the result's usefulness, so that a fetch can tell "still
/// pending" (`202`) from "unknown or expired" (`404`). Workers never touch it.
pub fn ticket_key(service: &str, request_id: &str) -> String {
    format!("holdline:{{{service}}}:ticket:{request_id}")
}

/// How long a reply stream lives after it was last written to or read (`EXPIRE`, in seconds).
/// The gateway refreshes it while it reads; workers refresh it after adding replies, so a stream
/// recreated by late replies to a replica that went away disappears instead of staying forever.
pub const REPLY_STREAM_TTL_SECS: u64 = 3600;

/// The most bytes in a service name or gateway id.
pub const MAX_NAME_LEN: usize = 64;

/// Whether `name` may be a service name or a gateway id: 1 to [`MAX_NAME_LEN`] of
/// `[A-Za-z0-9_.-]`. Such a name cannot contain the braces and colons that delimit keys.
pub fn is_valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The reply stream of one gateway replica: workers `XADD` each response here so the replica that
/// holds the client's connection learns of it without polling.
pub fn reply_stream(gateway_id: &str) -> String {
    format!("holdline:{{gw:{gateway_id}}}:replies")
}

/// Whether `key` is the reply stream of some gateway replica, i.e. what [`reply_stream`] makes of
/// a [valid](is_valid_name) gateway id. A worker writes replies only to such keys, so an entry
/// naming any other key (written by hand, or by something that is not the gateway) cannot make it
/// create or expire keys outside the gateway's namespace.
pub fn is_reply_stream(key: &str) -> bool {
    key.strip_prefix("holdline:{gw:")
        .and_then(|rest| rest.strip_suffix("}:replies"))
        .is_some_and(is_valid_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The part of a key Redis Cluster hashes: between the first `{` and the next `}`.
    fn hash_tag(key: &str) -> &str {
        let open = key.find('{').unwrap();
        let close = key[open..].find('}').unwrap() + open;
        &key[open + 1..close]
    }

    #[test]
    fn service_keys_share_one_slot() {
        let tags = [
            hash_tag(&request_stream("echo")).to_owned(),
            hash_tag(&dead_letter_stream("echo")).to_owned(),
            hash_tag(&result_key("echo", "abc")).to_owned(),
            hash_tag(&ticket_key("echo", "abc")).to_owned(),
        ];
        assert!(tags.iter().all(|t| t == "echo"), "{tags:?}");
        assert_eq!(hash_tag(&reply_stream("g1")), "gw:g1");
    }

    #[test]
    fn names_are_short_tokens_without_delimiters() {
        for good in ["echo", "a", "svc-1.v2_x", &"n".repeat(MAX_NAME_LEN)] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in ["", "a b", "x{y}", "a:b", "é", &"n".repeat(MAX_NAME_LEN + 1)] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn only_gateway_reply_streams_are_reply_streams() {
        assert!(is_reply_stream(&reply_stream("g1")));
        assert!(is_reply_stream(&reply_stream("0123456789abcdef")));
        for other in [
            "mykey".to_owned(),
            "holdline:{gw:}:replies".to_owned(),
            "holdline:{gw:a}b}:replies".to_owned(),
            "holdline:{gw:g1}:replies:x".to_owned(),
            request_stream("echo"),
            result_key("echo", "abc"),
            dead_letter_stream("echo"),
            reply_stream("has space"),
        ] {
            assert!(!is_reply_stream(&other), "{other}");
        }
    }
}
