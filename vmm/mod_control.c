/*
 * mod_control.c - the JSON control socket (ctl.h): "status", and the
 * commands of every active module, served from when the guest is about to
 * run until teardown, which takes it down first.
 */
#include <errno.h>
#include <stdlib.h>

#include "util.h"
#include "vmm.h"

static int opt_control(struct vmm *v, const char *arg, char *err, size_t errlen)
{
	(void)err, (void)errlen;
	return order_set(&v->order.control, arg);
}

static json_t *cmd_status(void *opaque, json_t *req, char *err, size_t errlen)
{
	(void)req, (void)err, (void)errlen;
	return vmm_status(opaque);
}

/* One handler for every module command: @opaque is the command, the VMM is found through it. */
struct cmd_ref {
	struct vmm *v;
	const struct vmm_cmd *cmd;
};

struct control {
	struct ctl *ctl;
	int nr;
	struct cmd_ref refs[64];
};

static json_t *cmd_module(void *opaque, json_t *req, char *err, size_t errlen)
{
	struct cmd_ref *r = opaque;

	return r->cmd->fn(r->v, req, err, errlen);
}

static int control_setup(struct vmm *v)
{
	struct control *c;

	if (!v->order.control)
		return VMM_IDLE;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	vmm_set_priv(v, &mod_control, c);
	return 0;
}

/*
 * Last of all (the image is loaded): the socket appears only now, so that
 * whoever waits for it (the agent) knows the VMM got this far, and serves
 * the commands of the active modules.
 */
static int control_start(struct vmm *v)
{
	struct control *c = vmm_priv(v, &mod_control);

	c->ctl = ctl_create(v->order.control);
	if (!c->ctl)
		return -EIO;
	ctl_register(c->ctl, "status", cmd_status, v,
		     "state, memory, vCPUs and their exit counters, and each module's");
	for (int i = 0; i < v->nr_modules; i++) {
		for (const struct vmm_cmd *cmd = v->modules[i]->cmds;
		     v->active[i] && cmd && cmd->fn; cmd++) {
			struct cmd_ref *r = &c->refs[c->nr];

			if (c->nr == (int)ARRAY_SIZE(c->refs))
				return -ENOSPC;
			*r = (struct cmd_ref){v, cmd};
			c->nr++;
			ctl_register(c->ctl, cmd->name ? cmd->name : vnode_verbs[cmd->verb].cmd,
				     cmd_module, r,
				     cmd->help ? cmd->help : vnode_verbs[cmd->verb].help);
		}
	}
	return ctl_start(c->ctl);
}

static void control_teardown(struct vmm *v)
{
	struct control *c = vmm_priv(v, &mod_control);

	if (c->ctl)
		ctl_destroy(c->ctl);
	free(c);
	vmm_set_priv(v, &mod_control, NULL);
}

static const struct vmm_option control_options[] = {
	{"control", "PATH", "serve the JSON control socket at PATH (try {\"cmd\":\"help\"})",
	 opt_control},
	{NULL},
};

const struct vmm_module mod_control = {
	.name = "control",
	.options = control_options,
	.setup = control_setup,
	.start = control_start,
	.teardown = control_teardown,
};
