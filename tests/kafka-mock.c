/*
 * dd-kafka-mock: a Kafka cluster on loopback for the tests, librdkafka's
 * mock cluster (rdkafka_mock.h), which kcat and every client talk to as
 * to real brokers. Never installed.
 *
 *   dd-kafka-mock [-b BROKERS] [-c CONTROL] [-t SECONDS] TOPIC:PARTITIONS...
 *
 * creates the topics, prints the bootstrap servers on stdout (one line),
 * and serves until SIGTERM/SIGINT, or SECONDS (default 600) so a test
 * that died leaves nothing behind. Every 50 ms it looks for the file
 * CONTROL: each of its lines "down N" or "up N" sets broker N (1-based)
 * down or up, "rtt N MS" makes it answer each request MS milliseconds
 * late (a floor on the time a client takes to read a topic, however fast
 * the machine); the file is removed once done, so a test writes it and
 * waits for it to go.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	stop = sig;
}

static void
quiet_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
}

static void
control(rd_kafka_mock_cluster_t *mc, const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return;
	char line[128];
	int id, ms;
	while (fgets(line, sizeof line, f)) {
		if (sscanf(line, "rtt %d %d", &id, &ms) == 2)
			rd_kafka_mock_broker_set_rtt(mc, id, ms);
		else if (sscanf(line, "down %d", &id) == 1)
			rd_kafka_mock_broker_set_down(mc, id);
		else if (sscanf(line, "up %d", &id) == 1)
			rd_kafka_mock_broker_set_up(mc, id);
		else
			fprintf(stderr, "dd-kafka-mock: %s: not a command: %s", path, line);
	}
	fclose(f);
	unlink(path);
}

int
main(int argc, char *argv[])
{
	int brokers = 1, c;
	long seconds = 600;
	const char *ctl = NULL;
	while ((c = getopt(argc, argv, "b:c:t:")) != -1) {
		switch (c) {
		case 'b':
			brokers = atoi(optarg);
			break;
		case 'c':
			ctl = optarg;
			break;
		case 't':
			seconds = atol(optarg);
			break;
		default:
			fprintf(stderr, "usage: dd-kafka-mock [-b BROKERS] [-c CONTROL] [-t SECONDS] "
			    "TOPIC:PARTITIONS...\n");
			return 2;
		}
	}
	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set_log_cb(conf, quiet_log);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
	if (rk == NULL) {
		fprintf(stderr, "dd-kafka-mock: %s\n", err);
		return 4;
	}
	rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
	if (mc == NULL) {
		fprintf(stderr, "dd-kafka-mock: cannot start the mock cluster\n");
		return 4;
	}
	for (int i = optind; i < argc; i++) {
		char *colon = strrchr(argv[i], ':');
		int parts = colon ? atoi(colon + 1) : 1;
		if (colon)
			*colon = '\0';
		rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, argv[i], parts,
		    brokers < 3 ? brokers : 3);
		if (e) {
			fprintf(stderr, "dd-kafka-mock: %s: %s\n", argv[i], rd_kafka_err2str(e));
			return 4;
		}
	}
	printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
	fflush(stdout);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	time_t end = time(NULL) + seconds;
	while (!stop && time(NULL) < end) {
		if (ctl)
			control(mc, ctl);
		usleep(50 * 1000);
	}
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(rk);
	return 0;
}
