-- chatprobe's XMPP target: Prosody on 127.0.0.1 only, without TLS, for
-- measurements and tests on this machine. `chatprobe xmpp` fills in the
-- {{…}} fields and starts Prosody in the foreground with this file.
interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
http_interfaces = { "127.0.0.1" }
https_interfaces = {}
c2s_ports = { {{c2s_port}} }
http_ports = { {{http_port}} }
https_ports = {}
c2s_direct_tls_ports = {}
s2s_ports = {}
data_path = "{{dir}}/data"
pidfile = "{{dir}}/prosody.pid"
run_as_root = true
daemonize = false
log = { { levels = { min = "info" }, to = "file", filename = "{{dir}}/prosody.log" } }
certificates = "{{dir}}/certs"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_plain"
consider_websocket_secure = true
modules_enabled = {
  "roster", "saslauth", "disco", "carbons", "ping", "mam",
  "websocket", "http_files", "groups", "firewall",
  -- XEP-0191 blocking, on in Prosody's default config: without it
  -- Converse 14 never opens a chat with someone outside the roster (it
  -- waits for a block list that never comes).
  "blocklist",
}
modules_disabled = { "s2s", "tls" }
-- Every account sees every other in its roster (one shared group), unless
-- `chatprobe xmpp --no-roster` left the group empty.
groups_file = "{{dir}}/groups.txt"
-- The censor: mod_firewall rules made from the keyword list.
firewall_scripts = { "{{dir}}/censor.pfw" }
http_files_dir = "{{dir}}/www"
http_host = "127.0.0.1"
VirtualHost "{{domain}}"
  http_host = "127.0.0.1"
Component "upload.{{domain}}" "http_file_share"
  http_host = "127.0.0.1"
  http_file_share_size_limit = 26214400
