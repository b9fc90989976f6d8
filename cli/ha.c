/* ha.c - legoctl up --managers N: a local etcd and the managers that share it. */
#include <string.h>
#include <unistd.h>

#include "legoctl.h"
#include "pki.h"

/* The identity etcd and the managers share, made once (pki_init_etcd). */
int etcd_identity(struct legoctl *lc, const char *pki)
{
	char p[PATH_MAX + 32], err[1024];

	snprintf(p, sizeof(p), "%s/etcd/ca.key", pki);
	if (!access(p, F_OK))
		return 0;
	if (pki_init_etcd(pki, NULL, err, sizeof(err)))
		return fail("cannot make etcd's identity: %s", err);
	if (!lc->json && !lc->up_quietly)
		printf("  %-9s made: etcd's own CA and certificates in %s/etcd\n", "identity", pki);
	return 0;
}

/*
 * Several managers (legoctl up --managers N): cluster.json's "managers"
 * lists their URLs (the first is "manager"), "etcd" the client and peer
 * addresses of etcd's members. Chosen once, like the other addresses; a
 * cluster that kept its state in SQLite does not move it: 1 if asked to
 * go from one manager to several, or back.
 */
int managers_config(struct legoctl *lc, json_t *c, int nr_managers, int nr_etcd)
{
	json_t *ms = json_object_get(c, "managers"), *et;
	int have = json_is_array(ms) ? (int)json_array_size(ms) : 1;
	char db[PATH_MAX];

	if (!nr_managers || nr_managers == have)
		return 0;
	home_path(lc, db, sizeof(db), "manager.db");
	if ((have == 1 && !access(db, F_OK)) || (have > 1 && nr_managers == 1))
		return 1;
	if (!json_is_array(ms)) {
		ms = json_pack("[s]", JS(c, "manager"));
		json_object_set_new(c, "managers", ms);
	}
	while ((int)json_array_size(ms) < nr_managers)
		json_array_append_new(ms, json_sprintf("https://127.0.0.1:%d", free_port()));
	if (!json_is_array(json_object_get(c, "etcd"))) {
		et = json_array();
		for (int i = 0; i < (nr_etcd ? nr_etcd : 3); i++)
			json_array_append_new(
				et, json_pack("{s:o,s:o}", "client",
					      json_sprintf("127.0.0.1:%d", free_port()), "peer",
					      json_sprintf("127.0.0.1:%d", free_port())));
		json_object_set_new(c, "etcd", et);
	}
	return 0;
}

int ha_daemons(struct legoctl *lc, json_t *c, const char *subnet, struct ha *ha)
{
	json_t *et = json_object_get(c, "etcd"), *ms = json_object_get(c, "managers");
	size_t n = 0;

	memset(ha, 0, sizeof(*ha));
	if (!json_is_array(ms) || json_array_size(ms) < 2)
		return 0;
	ha->nr_etcd = (int)json_array_size(et);
	if (ha->nr_etcd < 1 || ha->nr_etcd > 3)
		return fail("cluster.json: \"etcd\" lists 1 to 3 members");
	snprintf(ha->etcd_bin, sizeof(ha->etcd_bin), "/usr/bin/etcd");
	if (access(ha->etcd_bin, X_OK))
		return fail("several managers keep their state in etcd, and %s is missing: "
			    "apt-get install etcd-server",
			    ha->etcd_bin);
	snprintf(ha->mgr_bin, sizeof(ha->mgr_bin), "%s/lego-manager", lc->bindir);
	home_path(lc, ha->pki, sizeof(ha->pki), "pki");
	snprintf(ha->cert, sizeof(ha->cert), "%s/etcd/etcd.pem", ha->pki);
	snprintf(ha->key, sizeof(ha->key), "%s/etcd/etcd.key", ha->pki);
	snprintf(ha->ca, sizeof(ha->ca), "%s/etcd/ca.pem", ha->pki);
	snprintf(ha->subnet, sizeof(ha->subnet), "%s", subnet);
	n = (size_t)snprintf(ha->store, sizeof(ha->store), "etcd://");
	for (int i = 0; i < ha->nr_etcd; i++) {
		json_t *m = json_array_get(et, i);

		snprintf(ha->client_url[i], sizeof(ha->client_url[i]), "https://%s",
			 JS(m, "client"));
		snprintf(ha->peer_url[i], sizeof(ha->peer_url[i]), "https://%s", JS(m, "peer"));
		n += (size_t)snprintf(ha->store + n, sizeof(ha->store) - n, "%s%s", i ? "," : "",
				      JS(m, "client"));
		snprintf(ha->cluster + strlen(ha->cluster),
			 sizeof(ha->cluster) - strlen(ha->cluster), "%setcd-%d=%s", i ? "," : "",
			 i + 1, ha->peer_url[i]);
	}
	for (int i = 0; i < ha->nr_etcd; i++) {
		struct daemon *d = &ha->d[ha->nr];
		char *const argv[] = {ha->etcd_bin,
				      "--name",
				      ha->names[ha->nr],
				      "--data-dir",
				      ha->data[i],
				      "--listen-client-urls",
				      ha->client_url[i],
				      "--advertise-client-urls",
				      ha->client_url[i],
				      "--listen-peer-urls",
				      ha->peer_url[i],
				      "--initial-advertise-peer-urls",
				      ha->peer_url[i],
				      "--initial-cluster",
				      ha->cluster,
				      "--initial-cluster-token",
				      "lego",
				      "--cert-file",
				      ha->cert,
				      "--key-file",
				      ha->key,
				      "--trusted-ca-file",
				      ha->ca,
				      "--client-cert-auth",
				      "--peer-cert-file",
				      ha->cert,
				      "--peer-key-file",
				      ha->key,
				      "--peer-trusted-ca-file",
				      ha->ca,
				      "--peer-client-cert-auth",
				      "--logger=zap",
				      "--log-level=warn",
				      NULL};

		snprintf(ha->names[ha->nr], sizeof(ha->names[0]), "etcd-%d", i + 1);
		snprintf(ha->addr[ha->nr], sizeof(ha->addr[0]), "%s",
			 JS(json_array_get(et, i), "client"));
		home_path(lc, ha->data[i], sizeof(ha->data[i]), ha->names[ha->nr]);
		d->name = ha->names[ha->nr++];
		memcpy(d->argv, argv, sizeof(argv));
	}
	for (size_t i = 1; i < json_array_size(ms); i++) {
		struct daemon *d = &ha->d[ha->nr];
		const char *url = json_string_value(json_array_get(ms, i));

		snprintf(ha->names[ha->nr], sizeof(ha->names[0]), "manager-%d", (int)i + 1);
		snprintf(ha->addr[ha->nr], sizeof(ha->addr[0]), "%s", url + strlen("https://"));
		d->name = ha->names[ha->nr];
		char *const argv[] = {ha->mgr_bin, "--store",  ha->store,	 "--pki",
				      ha->pki,	   "--listen", ha->addr[ha->nr], "--subnet",
				      ha->subnet,  NULL};
		memcpy(d->argv, argv, sizeof(argv));
		ha->nr++;
	}
	return 0;
}
