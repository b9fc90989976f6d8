/* order_int.h - what order.c and order_json.c share, and no one else. */
#ifndef LEGO_ORDER_INT_H
#define LEGO_ORDER_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "order.h"

/* order_free_list - free a list of @n strings and the list. */
void order_free_list(char **list, int n);

/* order_push - append a copy of @len bytes of @s to the list. 0 or -ENOMEM. */
int order_push(char ***list, int *nr, const char *s, size_t len);

/* order_nic_check - is @nic complete (with its TAP if @tap)? 0, or -EINVAL and why in @why. */
int order_nic_check(const struct order_nic *nic, bool tap, const char **why);

#endif
