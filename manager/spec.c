/*
 * spec.c - what a vNode's spec (JSON, what the user asked for) may say:
 *   name, cpus, memory, excache, disks (their sizes in bytes: vda, vdb, ...;
 *   "disk": one size, as before), image (the size of a raw image to be
 *   imported into the first disk before the vNode starts), uuid, net (a
 *   network interface: true by default for a Linux vNode, false for a
 *   payload), max_memory (memresize.c), and either payload (+ args) or
 *   kernel (+ initrd, cmdline), or neither (the agent's boot kit: Debian's
 *   stock kernel), transport (to the memory servers: tcp, rdma or auto).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "manager.h"
#include "order.h"
#include "util.h"

/*
 * The disks of a spec, as "disks": [size, ...]; a "disk" of the older form
 * becomes the first, an "image" makes the first at least its size.
 */
static int disks_check(json_t *spec, json_t *disk, char *err, size_t errlen)
{
	json_t *disks = json_object_get(spec, "disks"), *image = json_object_get(spec, "image");
	json_t *e;
	size_t i;

	if (disk && (!json_is_integer(disk) || json_integer_value(disk) < 0 ||
		     json_integer_value(disk) % 512)) {
		snprintf(err, errlen, "disk must be a size in bytes, a multiple of 512 (0: none)");
		return -EINVAL;
	}
	if (!disks) {
		disks = json_array();
		if (disk && json_integer_value(disk))
			json_array_append(disks, disk);
		json_object_set_new(spec, "disks", disks);
	}
	json_object_del(spec, "disk");
	if (image && (!json_is_integer(image) || json_integer_value(image) <= 0)) {
		snprintf(err, errlen, "image is the size in bytes of the image to import");
		return -EINVAL;
	}
	if (image) { /* the first disk holds the image */
		json_int_t need = ALIGN_UP(json_integer_value(image), (json_int_t)512);

		if (!json_array_size(disks))
			json_array_append_new(disks, json_integer(need));
		else if (json_integer_value(json_array_get(disks, 0)) < need)
			json_array_set_new(disks, 0, json_integer(need));
	}
	if (!json_is_array(disks) || json_array_size(disks) > ORDER_MAX_DISKS) {
		snprintf(err, errlen, "disks is a list of at most %d sizes", ORDER_MAX_DISKS);
		return -EINVAL;
	}
	json_array_foreach(disks, i, e)
	{
		if (!json_is_integer(e) || json_integer_value(e) < 4096 ||
		    json_integer_value(e) % 512) {
			snprintf(err, errlen,
				 "each disk is a size in bytes, a multiple of 512, at "
				 "least 4K");
			return -EINVAL;
		}
	}
	return 0;
}

int spec_check(json_t *spec, char *err, size_t errlen)
{
	const char *name = spec_str(spec, "name");
	json_t *cpus = json_object_get(spec, "cpus"), *mem = json_object_get(spec, "memory");
	json_t *xc = json_object_get(spec, "excache"), *disk = json_object_get(spec, "disk");
	const char *keys[] = {"payload", "args", "kernel", "initrd", "cmdline", "uuid"};

	if (!name || !lmp_vol_name_ok(name) || strlen(name) >= NAME_LEN - 1) {
		snprintf(err, errlen,
			 "a vNode needs a name of letters, digits, '_', '.' or '-' "
			 "(at most 62, not starting with '.')");
		return -EINVAL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		json_t *k = json_object_get(spec, keys[i]);

		if (k && !json_is_string(k)) {
			snprintf(err, errlen, "%s must be a string", keys[i]);
			return -EINVAL;
		}
	}
	if (spec_str(spec, "payload") && spec_str(spec, "kernel")) {
		snprintf(err, errlen, "give a payload or a kernel, not both");
		return -EINVAL;
	}
	if (!json_object_get(spec, "uuid")) { /* a vNode keeps one identity, as in libvirt */
		uint8_t u[16];

		if (getrandom(u, sizeof(u), 0) != sizeof(u)) {
			snprintf(err, errlen, "no randomness for the vNode's UUID");
			return -EIO;
		}
		u[6] = (u[6] & 0x0f) | 0x40;
		u[8] = (u[8] & 0x3f) | 0x80;
		json_object_set_new(spec, "uuid",
				    json_sprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
						 "%02x%02x%02x%02x%02x%02x",
						 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7],
						 u[8], u[9], u[10], u[11], u[12], u[13], u[14],
						 u[15]));
	}
	if (!cpus)
		json_object_set_new(spec, "cpus", cpus = json_integer(1));
	if (!mem)
		json_object_set_new(spec, "memory", mem = json_integer((json_int_t)(256 * MiB)));
	if (!json_is_integer(cpus) || json_integer_value(cpus) < 1 ||
	    json_integer_value(cpus) > 64) {
		snprintf(err, errlen, "cpus must be between 1 and 64");
		return -EINVAL;
	}
	if (!json_is_integer(mem) || json_integer_value(mem) < (json_int_t)(16 * MiB) ||
	    json_integer_value(mem) > (json_int_t)(1024 * GiB) || json_integer_value(mem) % 4096) {
		snprintf(err, errlen, "memory must be whole pages, between 16 MiB and 1 TiB");
		return -EINVAL;
	}
	if (!xc) /* a quarter resident by default: the rest lives on the memory servers */
		json_object_set_new(
			spec, "excache",
			xc = json_integer(ALIGN_UP(json_integer_value(mem) / 4, (json_int_t)MiB)));
	if (!json_is_integer(xc) || json_integer_value(xc) < (json_int_t)MiB ||
	    json_integer_value(xc) > json_integer_value(mem)) {
		snprintf(err, errlen, "excache must be at least 1 MiB and at most the memory");
		return -EINVAL;
	}
	if (memresize_spec_check(spec, err, errlen))
		return -EINVAL;
	if (!json_object_get(spec, "transport")) /* RDMA where both ends have it */
		json_object_set_new(spec, "transport", json_string("auto"));
	if (!spec_str(spec, "transport") || (strcmp(spec_str(spec, "transport"), "tcp") &&
					     strcmp(spec_str(spec, "transport"), "rdma") &&
					     strcmp(spec_str(spec, "transport"), "auto"))) {
		snprintf(err, errlen,
			 "transport (to the memory servers) is tcp, rdma (placed on servers that "
			 "serve RDMA only) or auto (RDMA where both ends have it, the default)");
		return -EINVAL;
	}
	if (!json_object_get(spec, "net"))
		json_object_set_new(spec, "net", json_boolean(!spec_str(spec, "payload")));
	if (!json_is_boolean(json_object_get(spec, "net"))) {
		snprintf(err, errlen, "net is true or false");
		return -EINVAL;
	}
	/* A spec is kept in every record of the vNode: bounded, whatever the store
	 * (etcd refuses a request over 1.5 MiB, and a refused write stops a leader). */
	char *text = json_dumps(spec, JSON_COMPACT);
	size_t len = text ? strlen(text) : SPEC_MAX + 1;

	free(text);
	if (len > SPEC_MAX) {
		snprintf(err, errlen,
			 "a vNode's spec is at most %d KiB of JSON (this one: %zu bytes)",
			 SPEC_MAX >> 10, len);
		return -EINVAL;
	}
	return disks_check(spec, disk, err, errlen);
}

/* Delete the volumes of @v's first @n disks (a create undone, or a destroy); errors logged. */
