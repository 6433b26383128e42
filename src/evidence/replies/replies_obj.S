/* Embeds the compiled BPF object so fusecert-replies needs no file beside it. */
	.section .rodata
	.balign 8
	.global fusecert_replies_bpf
fusecert_replies_bpf:
	.incbin "replies.bpf.o"
	.global fusecert_replies_bpf_end
fusecert_replies_bpf_end:
	.section .note.GNU-stack,"",@progbits
