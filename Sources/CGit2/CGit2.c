// Forwards the libgit2 functions stepguard uses to the library opened at run time.
// Each forwarder has the prototype <git2.h> declares, so the compiler checks every signature.
#include "CGit2.h"

#include "CLazyLoad.h"

// F(return type, name, parameters, arguments) for functions that return a value; V(...) for void;
// N(name) for the variadic git_libgit2_opts, called through the typed wrapper below.
#define SG_FUNCTIONS(F, V, N) \
    F(int, git_libgit2_init, (void), ()) \
    F(int, git_libgit2_version, (int *major, int *minor, int *rev), (major, minor, rev)) \
    F(const git_error *, git_error_last, (void), ()) \
    V(git_blob_free, (git_blob *blob), (blob)) \
    F(int, git_blob_lookup, (git_blob **blob, git_repository *repo, const git_oid *id), (blob, repo, id)) \
    F(const void *, git_blob_rawcontent, (const git_blob *blob), (blob)) \
    F(git_object_size_t, git_blob_rawsize, (const git_blob *blob), (blob)) \
    F(const git_signature *, git_commit_author, (const git_commit *commit), (commit)) \
    V(git_commit_free, (git_commit *commit), (commit)) \
    F(int, git_commit_lookup, (git_commit **commit, git_repository *repo, const git_oid *id), (commit, repo, id)) \
    F(int, git_commit_parent, (git_commit **out, const git_commit *commit, unsigned int n), (out, commit, n)) \
    F(unsigned int, git_commit_parentcount, (const git_commit *commit), (commit)) \
    F(int, git_commit_tree, (git_tree **tree_out, const git_commit *commit), (tree_out, commit)) \
    F(int, git_diff_find_options_init, (git_diff_find_options *opts, unsigned int version), (opts, version)) \
    F(int, git_diff_find_similar, (git_diff *diff, const git_diff_find_options *options), (diff, options)) \
    V(git_diff_free, (git_diff *diff), (diff)) \
    F(const git_diff_delta *, git_diff_get_delta, (const git_diff *diff, size_t idx), (diff, idx)) \
    F(size_t, git_diff_num_deltas, (const git_diff *diff), (diff)) \
    F(int, git_diff_options_init, (git_diff_options *opts, unsigned int version), (opts, version)) \
    F(int, git_diff_tree_to_index, (git_diff **diff, git_repository *repo, git_tree *old_tree, git_index *index, \
                                    const git_diff_options *opts), (diff, repo, old_tree, index, opts)) \
    F(int, git_diff_tree_to_tree, (git_diff **diff, git_repository *repo, git_tree *old_tree, git_tree *new_tree, \
                                   const git_diff_options *opts), (diff, repo, old_tree, new_tree, opts)) \
    F(int, git_ignore_path_is_ignored, (int *ignored, git_repository *repo, const char *path), (ignored, repo, path)) \
    V(git_index_free, (git_index *index), (index)) \
    F(int, git_index_open, (git_index **out, const char *index_path), (out, index_path)) \
    V(git_object_free, (git_object *object), (object)) \
    F(const git_oid *, git_object_id, (const git_object *obj), (obj)) \
    F(char *, git_oid_tostr, (char *out, size_t n, const git_oid *id), (out, n, id)) \
    V(git_patch_free, (git_patch *patch), (patch)) \
    F(int, git_patch_from_diff, (git_patch **out, git_diff *diff, size_t idx), (out, diff, idx)) \
    F(int, git_patch_from_blobs, (git_patch **out, const git_blob *old_blob, const char *old_as_path, \
                                  const git_blob *new_blob, const char *new_as_path, const git_diff_options *opts), \
      (out, old_blob, old_as_path, new_blob, new_as_path, opts)) \
    F(const git_diff_delta *, git_patch_get_delta, (const git_patch *patch), (patch)) \
    F(int, git_patch_get_hunk, (const git_diff_hunk **out, size_t *lines_in_hunk, git_patch *patch, size_t hunk_idx), \
      (out, lines_in_hunk, patch, hunk_idx)) \
    F(size_t, git_patch_num_hunks, (const git_patch *patch), (patch)) \
    V(git_repository_free, (git_repository *repo), (repo)) \
    F(int, git_repository_index, (git_index **out, git_repository *repo), (out, repo)) \
    F(int, git_repository_open_ext, (git_repository **out, const char *path, unsigned int flags, const char *ceiling_dirs), \
      (out, path, flags, ceiling_dirs)) \
    F(const char *, git_repository_path, (const git_repository *repo), (repo)) \
    F(const char *, git_repository_workdir, (const git_repository *repo), (repo)) \
    F(int, git_revparse_single, (git_object **out, git_repository *repo, const char *spec), (out, repo, spec)) \
    V(git_revwalk_free, (git_revwalk *walk), (walk)) \
    F(int, git_revwalk_hide, (git_revwalk *walk, const git_oid *commit_id), (walk, commit_id)) \
    F(int, git_revwalk_new, (git_revwalk **out, git_repository *repo), (out, repo)) \
    F(int, git_revwalk_next, (git_oid *out, git_revwalk *walk), (out, walk)) \
    F(int, git_revwalk_push, (git_revwalk *walk, const git_oid *id), (walk, id)) \
    F(int, git_revwalk_push_glob, (git_revwalk *walk, const char *glob), (walk, glob)) \
    F(int, git_revwalk_push_head, (git_revwalk *walk), (walk)) \
    F(int, git_revwalk_push_range, (git_revwalk *walk, const char *range), (walk, range)) \
    V(git_tree_free, (git_tree *tree), (tree)) \
    F(int, git_tree_lookup, (git_tree **out, git_repository *repo, const git_oid *id), (out, repo, id)) \
    F(size_t, git_tree_entrycount, (const git_tree *tree), (tree)) \
    F(const git_tree_entry *, git_tree_entry_byindex, (const git_tree *tree, size_t idx), (tree, idx)) \
    F(const char *, git_tree_entry_name, (const git_tree_entry *entry), (entry)) \
    F(const git_oid *, git_tree_entry_id, (const git_tree_entry *entry), (entry)) \
    F(git_filemode_t, git_tree_entry_filemode, (const git_tree_entry *entry), (entry)) \
    F(const git_oid *, git_commit_tree_id, (const git_commit *commit), (commit)) \
    F(const git_oid *, git_commit_parent_id, (const git_commit *commit, unsigned int n), (commit, n)) \
    F(int, git_repository_odb, (git_odb **out, git_repository *repo), (out, repo)) \
    V(git_odb_free, (git_odb *db), (db)) \
    F(int, git_odb_read, (git_odb_object **out, git_odb *db, const git_oid *id), (out, db, id)) \
    V(git_odb_object_free, (git_odb_object *object), (object)) \
    F(const void *, git_odb_object_data, (git_odb_object *object), (object)) \
    F(size_t, git_odb_object_size, (git_odb_object *object), (object)) \
    F(git_object_t, git_odb_object_type, (git_odb_object *object), (object)) \
    F(int, git_oid_fromstrn, (git_oid *out, const char *str, size_t length), (out, str, length)) \
    N(git_libgit2_opts)

// The version built against first, then the other sonames whose ABI the calls above are compatible
// with. Checked against each version's headers (1.5 to 1.9): every forwarder's prototype compiles
// unchanged, the constants stepguard uses have the same values, the structs it reads have the same
// layout, and of git_diff_options — the one struct it fills — the fields it sets (flags,
// context_lines, interhunk_lines) sit at the same offsets with the same size (1.7 put oid_type into
// padding). Debian 12 ships 1.5, Ubuntu 24.04 1.7, Debian 13 1.9.
#define SG_SONAMES "libgit2.so." LIBGIT2_SOVERSION, "libgit2.so.1.9", "libgit2.so.1.8", "libgit2.so.1.7", \
    "libgit2.so.1.6", "libgit2.so.1.5"
#define SG_PACKAGE "libgit2-1.5 (Debian 12), libgit2-1.7 (Ubuntu 24.04) or libgit2-1.9 (Debian 13)"
#define SG_LOAD sg_git2_load
#include "lazy_library.def"

int sg_git_opts_int(int option, int value) {
    sg_require();
    return SG_SLOT(git_libgit2_opts)(option, value);
}
