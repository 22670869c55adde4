/* wait_policy.h - how idle OpenMP threads of a cbctiq command wait. */
#ifndef CBQ_CLI_WAIT_POLICY_H
#define CBQ_CLI_WAIT_POLICY_H

/* For a command that runs the network (predict, ae, gradcam, train, sanity,
 * study) with more than one thread and no OMP_WAIT_POLICY or
 * GOMP_SPINCOUNT of the user's: sets OMP_WAIT_POLICY=passive and re-executes
 * the program (libgomp reads its environment only while the process starts).
 * Returns only when nothing is to be done or the re-execution failed; the
 * command then runs with libgomp's default, which gives the same results. */
void cli_choose_wait_policy(int argc, char **argv);

#endif
