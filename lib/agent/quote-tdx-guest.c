/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Quote provider: TDREPORT from /dev/tdx_guest (TDX_CMD_GET_REPORT0), turned
 * into a quote by the host's QGS over vsock (CID 2, port 4050). For kernels
 * without configfs-tsm (6.2 .. 6.6).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include <openssl/crypto.h>

#include "agent-int.h"

/* include/uapi/linux/tdx-guest.h (not in every libc's kernel headers). */
struct tdx_report_req {
	uint8_t reportdata[64];
	uint8_t tdreport[TDC_TDREPORT_SIZE];
};
#define TDX_CMD_GET_REPORT0 _IOWR('T', 1, struct tdx_report_req)

#define DEF_TIMEOUT_MS 30000u

bool tdc_tdx_guest_available(const char *device)
{
	struct stat st;
	return stat(device ? device : TDC_TDX_GUEST_DEVICE, &st) == 0 && S_ISCHR(st.st_mode);
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int get_report(const char *dev, const uint8_t rd[64], uint8_t report[TDC_TDREPORT_SIZE],
		      struct tdc_error *e)
{
	struct tdx_report_req req;
	memset(&req, 0, sizeof(req));
	memcpy(req.reportdata, rd, 64);
	int fd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot open TDX guest device", "%s: %s", dev,
				 strerror(errno));
	int r = ioctl(fd, TDX_CMD_GET_REPORT0, &req);
	int err = errno;
	close(fd);
	if (r < 0)
		return TDC_FAILF(e, TDC_E_IO, "TDX_CMD_GET_REPORT0 failed", "%s", strerror(err));
	memcpy(report, req.tdreport, TDC_TDREPORT_SIZE);
	return 0;
}

/* Waits for fd to be ready for events, until deadline. */
static int wait_fd(int fd, short events, int64_t deadline, struct tdc_error *e)
{
	for (;;) {
		int64_t left = deadline - mono_ms();
		if (left <= 0)
			return TDC_FAIL(e, TDC_E_IO, "QGS timed out");
		struct pollfd p = {.fd = fd, .events = events};
		int r = poll(&p, 1, (int)(left > 60000 ? 60000 : left));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return TDC_FAILF(e, TDC_E_IO, "poll failed", "%s", strerror(errno));
		if (r > 0)
			return 0;
	}
}

static int io_all(int fd, void *buf, size_t n, bool writing, int64_t deadline, struct tdc_error *e)
{
	size_t done = 0;
	while (done < n) {
		TDC_GUARD(wait_fd(fd, writing ? POLLOUT : POLLIN, deadline, e));
		ssize_t r = writing ? send(fd, (uint8_t *)buf + done, n - done, MSG_NOSIGNAL)
				    : recv(fd, (uint8_t *)buf + done, n - done, 0);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0)
			return TDC_FAILF(e, TDC_E_IO, "QGS connection failed", "%s",
					 strerror(errno));
		if (r == 0)
			return TDC_FAIL(e, TDC_E_IO, "QGS closed the connection");
		done += (size_t)r;
	}
	return 0;
}

static int qgs_connect(const struct tdc_tdx_guest_opts *o, int64_t deadline, int *out,
		       struct tdc_error *e)
{
	struct sockaddr_vm sa;
	memset(&sa, 0, sizeof(sa));
	sa.svm_family = AF_VSOCK;
	sa.svm_cid = o->cid ? o->cid : TDC_QGS_VSOCK_CID;
	sa.svm_port = o->port ? o->port : TDC_QGS_VSOCK_PORT;
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return TDC_FAILF(e, TDC_E_IO, "no vsock", "%s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		int err = errno;
		close(fd);
		return TDC_FAILF(e, TDC_E_IO, "cannot connect to the QGS", "vsock %u:%u: %s",
				 sa.svm_cid, sa.svm_port, strerror(err));
	}
	int rc = wait_fd(fd, POLLOUT, deadline, e), soerr = 0;
	socklen_t sl = sizeof(soerr);
	if (rc == 0 && (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr))
		rc = TDC_FAILF(e, TDC_E_IO, "cannot connect to the QGS", "vsock %u:%u: %s",
			       sa.svm_cid, sa.svm_port, strerror(soerr ? soerr : errno));
	if (rc < 0) {
		close(fd);
		return rc;
	}
	*out = fd;
	return 0;
}

int tdc_tdx_guest_get_quote(const struct tdc_tdx_guest_opts *o, const uint8_t report_data[64],
			    uint8_t **quote, size_t *len, struct tdc_error *e)
{
	struct tdc_tdx_guest_opts none = {0};
	uint8_t report[TDC_TDREPORT_SIZE], prefix[4];
	uint8_t *req = NULL, *msg = NULL;
	size_t req_len;
	uint32_t msg_len;
	int fd = -1, rc;

	if (!o)
		o = &none;
	*quote = NULL;
	*len = 0;
	int64_t deadline = mono_ms() + (o->timeout_ms ? o->timeout_ms : DEF_TIMEOUT_MS);
	TDC_GUARD(get_report(o->device ? o->device : TDC_TDX_GUEST_DEVICE, report_data, report, e));
	rc = tdc_qgs_encode_get_quote_req(report, sizeof(report), &req, &req_len, e);
	OPENSSL_cleanse(report, sizeof(report));
	if (rc < 0)
		return rc;
	if ((rc = qgs_connect(o, deadline, &fd, e)) < 0 ||
	    (rc = io_all(fd, req, req_len, true, deadline, e)) < 0 ||
	    (rc = io_all(fd, prefix, 4, false, deadline, e)) < 0 ||
	    (rc = tdc_qgs_frame_len(prefix, &msg_len, e)) < 0)
		goto out;
	if (!(msg = malloc(msg_len))) {
		rc = TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		goto out;
	}
	if ((rc = io_all(fd, msg, msg_len, false, deadline, e)) < 0)
		goto out;
	struct tdc_rd q;
	if ((rc = tdc_qgs_decode_get_quote_resp(msg, msg_len, &q, e)) < 0)
		goto out;
	if (!(*quote = malloc(tdc_rd_len(&q)))) {
		rc = TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		goto out;
	}
	memcpy(*quote, tdc_rd_ptr(&q), tdc_rd_len(&q));
	*len = tdc_rd_len(&q);
out:
	if (fd >= 0)
		close(fd);
	free(req);
	free(msg);
	return rc;
}
