/* log.h - leveled logging to stderr, prefixed with the program name. */
#ifndef LEGO_LOG_H
#define LEGO_LOG_H

enum log_level { LOG_NONE = -1, LOG_ERR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* log_init - set the prefix (program name) and the most verbose level shown (LOG_NONE: none). */
void log_init(const char *prog, enum log_level level);

/* log_msg - print one line at @level; a trailing newline is added. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...)   log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
