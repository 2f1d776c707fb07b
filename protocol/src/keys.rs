//! The Redis key layout.
//!
//! Every key that belongs to one service starts with `holdline:{SERVICE}:`: the braces are a Redis
//! Cluster hash tag, so a service's request stream, dead-letter stream and results live in one slot
//! and multi-key commands (`XREADGROUP` over several lanes, `MULTI`) work on a cluster. Each gateway
//! replica's reply stream carries its own tag, `{gw:ID}`.
//!
//! Service names are restricted by the gateway's config validation to `[A-Za-z0-9_.-]`, so they
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

/// The reply stream of one gateway replica: workers `XADD` each response here so the replica that
/// holds the client's connection learns of it without polling.
pub fn reply_stream(gateway_id: &str) -> String {
    format!("holdline:{{gw:{gateway_id}}}:replies")
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
}
